// comb::runtime::piece_pool: reassembly of compute tasks from pieces (see piece_pool.hpp).
#include "runtime/pieces/piece_pool.hpp"

#include "base/errc.hpp"

#include <algorithm>

namespace comb::runtime {

std::vector<char> pooled_task::flatten() const {
  std::vector<char> out;
  out.reserve(total_bytes);
  for (const auto& c : chunks)
    out.insert(out.end(), c.begin(), c.end());
  return out;
}

std::vector<char> pooled_task::take_payload() {
  if (chunks.size() != 1)
    return flatten();
  auto out = chunks.front().take();
  chunks.clear();
  return out;
}

payload_buffer pooled_task::take_payload_buffer() {
  if (chunks.size() != 1)
    return payload_buffer{flatten()};
  auto out = std::move(chunks.front());
  chunks.clear();
  return out;
}

piece_pool::piece_pool(piece_pool_config cfg) : cfg_(cfg) {
  // Nothing else to do.
}

namespace {

std::string where(const piece& p) {
  return "piece " + std::to_string(p.piece_no) + "/" + std::to_string(p.piece_count) + " of task "
         + std::to_string(p.task_id);
}

} // namespace

caf::expected<std::optional<pooled_task>> piece_pool::checked(pooled_task t) {
  if (auto err = check_specs(t.inputs, t.total_bytes))
    return make_error(errc::invalid_argument,
                      "task " + std::to_string(t.task_id) + " (" + to_string(t.kind) + " of model '"
                        + t.model_id + "'): its tensors do not describe its "
                        + std::to_string(t.total_bytes) + "-byte payload: " + describe(err));
  return std::optional<pooled_task>{std::move(t)};
}

caf::expected<std::optional<pooled_task>> piece_pool::add_whole(piece p) {
  if (p.piece_count != 1 || p.piece_no != 0)
    return make_error(errc::protocol_error,
                      where(p) + ": a task sent whole must be piece 0 of 1");
  if (p.payload.size() > cfg_.memory_limit)
    return make_error(errc::too_large, "task " + std::to_string(p.task_id) + ": "
                                         + std::to_string(p.payload.size())
                                         + " bytes exceed the pool's memory limit of "
                                         + std::to_string(cfg_.memory_limit) + " bytes");
  return add_checked(std::move(p), clock::now());
}

caf::expected<std::optional<pooled_task>> piece_pool::add(piece p, clock::time_point now) {
  if (p.payload.size() > cfg_.max_piece)
    return make_error(errc::too_large, where(p) + ": payload of " + std::to_string(p.payload.size())
                                         + " bytes exceeds the limit of "
                                         + std::to_string(cfg_.max_piece) + " bytes per piece");
  return add_checked(std::move(p), now);
}

caf::expected<std::optional<pooled_task>> piece_pool::add_checked(piece p, clock::time_point now) {
  if (p.piece_count == 0)
    return make_error(errc::protocol_error, where(p) + ": pieceCount must be at least 1");
  if (p.piece_no >= p.piece_count)
    return make_error(errc::protocol_error, where(p) + ": pieceNo " + std::to_string(p.piece_no)
                                              + " is not below pieceCount "
                                              + std::to_string(p.piece_count));
  if (p.piece_no != 0 && !p.tensors.empty())
    return make_error(errc::protocol_error,
                      where(p) + ": carries tensor specs, which only piece 0 of a task may carry");
  auto i = tasks_.find(p.task_id);
  if (i == tasks_.end()) {
    if (auto f = finished_.find(p.task_id); f != finished_.end()) {
      if (f->second == finished::expired)
        return make_error(errc::timeout, where(p) + ": the task expired after "
                                           + std::to_string(cfg_.task_timeout.count())
                                           + " ms incomplete and was dropped");
      return make_error(errc::protocol_error,
                        where(p) + ": duplicate piece, the task is already complete");
    }
    if (p.piece_count == 1) {
      // Whole already: nothing is held, so the memory bound does not apply.
      pooled_task t;
      t.task_id = p.task_id;
      t.kind = p.kind;
      t.model_id = std::move(p.model_id);
      t.model_version = p.model_version;
      t.inputs = std::move(p.tensors);
      t.total_bytes = p.payload.size();
      t.chunks.push_back(std::move(p.payload));
      remember(t.task_id, finished::completed);
      return checked(std::move(t));
    }
    auto need = static_cast<size_t>(p.piece_count) * cfg_.max_piece;
    if (need / cfg_.max_piece != p.piece_count || need > cfg_.memory_limit)
      return make_error(errc::too_large, where(p) + ": a task of " + std::to_string(p.piece_count)
                                           + " pieces may need " + std::to_string(need)
                                           + " bytes, more than the pool's memory limit of "
                                           + std::to_string(cfg_.memory_limit) + " bytes");
    if (reserved_ + need > cfg_.memory_limit)
      return make_error(errc::overloaded, where(p) + ": incomplete tasks hold "
                                            + std::to_string(reserved_) + " of "
                                            + std::to_string(cfg_.memory_limit)
                                            + " bytes; retry when tasks complete");
    task_state st;
    st.kind = p.kind;
    st.model_id = p.model_id;
    st.model_version = p.model_version;
    st.piece_count = p.piece_count;
    st.reserved = need;
    st.deadline = now + cfg_.task_timeout;
    st.chunks.resize(p.piece_count);
    st.have.resize(p.piece_count, false);
    i = tasks_.emplace(p.task_id, std::move(st)).first;
    reserved_ += need;
  } else {
    auto& st = i->second;
    if (p.piece_count != st.piece_count)
      return make_error(errc::protocol_error, where(p) + ": pieceCount "
                                                + std::to_string(p.piece_count) + " disagrees with "
                                                + std::to_string(st.piece_count)
                                                + " given by earlier pieces of the task");
    if (p.kind != st.kind || p.model_id != st.model_id)
      return make_error(errc::protocol_error, where(p) + ": kind/model " + to_string(p.kind) + "/"
                                                + p.model_id + " disagree with "
                                                + to_string(st.kind) + "/" + st.model_id
                                                + " given by earlier pieces of the task");
    if (st.have[p.piece_no])
      return make_error(errc::protocol_error, where(p) + ": duplicate piece");
  }
  auto& st = i->second;
  st.have[p.piece_no] = true;
  st.bytes += p.payload.size();
  held_ += p.payload.size();
  st.chunks[p.piece_no] = std::move(p.payload);
  if (p.piece_no == 0)
    st.inputs = std::move(p.tensors);
  if (++st.received < st.piece_count)
    return std::optional<pooled_task>{};
  pooled_task t;
  t.task_id = i->first;
  t.kind = st.kind;
  t.model_id = std::move(st.model_id);
  t.model_version = st.model_version;
  t.inputs = std::move(st.inputs);
  t.chunks = std::move(st.chunks);
  t.total_bytes = st.bytes;
  reserved_ -= st.reserved;
  held_ -= st.bytes;
  tasks_.erase(i);
  remember(t.task_id, finished::completed);
  return checked(std::move(t));
}

std::vector<uint64_t> piece_pool::expire(clock::time_point now) {
  std::vector<uint64_t> out;
  for (auto i = tasks_.begin(); i != tasks_.end();) {
    if (i->second.deadline <= now) {
      out.push_back(i->first);
      reserved_ -= i->second.reserved;
      held_ -= i->second.bytes;
      i = tasks_.erase(i);
    } else {
      ++i;
    }
  }
  for (auto id : out)
    remember(id, finished::expired);
  return out;
}

std::optional<piece_pool::clock::time_point> piece_pool::next_expiry() const {
  std::optional<clock::time_point> out;
  for (const auto& [id, st] : tasks_)
    if (!out || st.deadline < *out)
      out = st.deadline;
  return out;
}

std::optional<uint32_t> piece_pool::model_version_of(uint64_t task_id) const {
  if (auto i = tasks_.find(task_id); i != tasks_.end())
    return i->second.model_version;
  return std::nullopt;
}

void piece_pool::remember(uint64_t task_id, finished how) {
  if (cfg_.remembered_tasks == 0)
    return;
  if (finished_.insert_or_assign(task_id, how).second)
    finished_order_.push_back(task_id);
  while (finished_order_.size() > cfg_.remembered_tasks) {
    finished_.erase(finished_order_.front());
    finished_order_.pop_front();
  }
}

} // namespace comb::runtime

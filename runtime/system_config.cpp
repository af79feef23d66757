#include "runtime/system_config.hpp"

#include "runtime/errc.hpp"

#include <caf/io/middleman.hpp>

namespace comb::runtime {

system_config::system_config(size_t threads) {
  load<caf::io::middleman>();
  add_error_category(errc_category,
                     [](uint8_t code, caf::atom_value, const caf::message& ctx) {
                       return describe(caf::error{code, errc_category, ctx});
                     });
  if (threads > 0)
    set("scheduler.max-threads", threads);
}

} // namespace comb::runtime

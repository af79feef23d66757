// `comb anomaly train | eval | score`: the HTTP anomaly detector of apps/anomaly on the
// command line. train: fit tokenizer and TextCNN on CSIC 2010 and save one model file.
// eval: stratified k-fold (Table 2) under both tokenizer protocols, the training-share
// sweep (Table 3), ablations, and the ModSecurity CRS peer. score: probabilities for
// requests read from a file or stdin, in this process, or with --node on a node's compute
// process (anomaly.score, apps/anomaly/anomaly_app.hpp), printed the same way.
#include "cli/commands.hpp"
#include "cli/tls_flags.hpp"

#include "apps/anomaly/anomaly_app.hpp"
#include "apps/anomaly/calibration.hpp"
#include "apps/anomaly/csic_dataset.hpp"
#include "apps/anomaly/detector.hpp"
#include "apps/anomaly/evaluation.hpp"
#include "apps/anomaly/keywords.hpp"
#include "apps/anomaly/ood_eval.hpp"
#include "apps/anomaly/payload_sets.hpp"
#include "apps/anomaly/trainer.hpp"
#include "base/ascii.hpp"
#include "base/base64.hpp"
#include "base/endpoint.hpp"
#include "base/errc.hpp"
#include "node/client.hpp"
#include "runtime/system_config.hpp"
#ifdef COMB_ANOMALY_HAVE_CRS
#  include "apps/anomaly/crs_engine.hpp"
#  include "apps/anomaly/crs_report.hpp"
#endif

#include <caf/actor_system.hpp>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <iterator>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

namespace comb::cli {

namespace {

using namespace comb::anomaly;

struct common_args {
  std::string data;
  size_t limit = 0;
  size_t vocab = 8192;
  size_t max_tokens = 512;
  // A longer schedule by default: each plateau of the validation loss (a share of the training
  // part, never the test fold) first lowers the learning rate (x0.3, twice) from the best
  // epoch; the third plateau stops. The first plateau is one epoch without a better loss, the
  // later ones two (--patience-after-drop 2: at the lower rates the loss falls slowly and
  // sometimes ties), so runs take 14 to 20 epochs; the limit is 24. CSIC protocol 1 (issue
  // 22), validation lines CSIC's own: fold 1, seeds 1-3, F1 0.9972 / 0.9974 / 0.9979 against
  // 0.9969 / 0.9970 / 0.9975 with patience 1 throughout (0.9970 / 0.9964 / 0.9962 with 5
  // epochs and no drops); 5 folds, seed 1: 0.9972 / 0.9967 / 0.9987 / 0.9985 / 0.9964, mean
  // 0.9975 +- 0.0010, against 0.9969 / 0.9967 / 0.9987 / 0.9984 / 0.9956, mean 0.9973 (the
  // patience-1 figures from the previous build of the same training and kernels sources). A
  // third drop with patience 1 changed only seed 3 and fold 5, so the default keeps two.
  int epochs = 24;
  int batch = 64;
  int patience = 1;
  int patience_after_drop = 2;
  int lr_drops = 2;
  float lr_decay = 0.3f;
  int min_steps = 2000;
  uint64_t seed = 1;
  std::string cookie = "name_only";
  std::string engine = "fused";
  bool sort_headers = false;
  std::string digits = "zero";
  std::string value_letters = "fold";
  double validation = 0.1;
  bool quiet = false;
  std::string decode = "on";
  // List 1 by default. List 2 (MongoDB operators, LDAP/XPath names, header names, written-
  // out CR/LF) recalled families held out of training better (3 seeds, 3 epochs, punctuation
  // benign set in training: all attacks at 1% FP 0.943 / 0.933 / 0.943 against 0.934 / 0.927
  // / 0.925; its words come from the references of those families' languages), but CSIC
  // protocol 1 fold 1, whose goal is 0.998, was lower with it under the schedule above: 0.9977
  // / 0.9971 / 0.9966 against 0.9974 / 0.9977 / 0.9980 (seeds 1-3), and 0.9963 / 0.9962
  // against 0.9969 / 0.9979 with the punctuation set.
  std::string keywords = "1";
  std::string header_urls = "on";
  // On: each decoded value followed by its original where decoding changed it. CSIC
  // protocol 1 fold 1, seeds 1-3: F1 0.9985 / 0.9984 / 0.9971 against 0.9972 / 0.9974 /
  // 0.9979 without; eval --ood (3-epoch models, seed 1): all attacks at the saved threshold
  // 0.9857 against 0.9671, at 1% FP 0.9868 against 0.9698, benign FP 0.75% both (non-Latin
  // 0.23% against 0.0%).
  std::string originals = "on";
  std::string row_lengths = "on";
  std::string payloads;
  std::string holdout;
  int attack_copies = 2;
  int benign_copies = 1;
  std::string site_benign;
  std::string site_train = "on";
  double target_fp = 0.006;
  float augmented_weight = 1.0f;
};

[[noreturn]] void fail(const std::string& what, int code = 1) {
  std::cerr << "comb anomaly: " << what << "\n";
  throw CLI::RuntimeError(code);
}

void add_common(CLI::App* c, common_args& a) {
  c->add_option("--data", a.data,
                "CSIC 2010 folder (default $COMB_CSIC_DIR or ../shared/data/csic2010)");
  c->add_option("--limit", a.limit, "use only the first N requests of each file (0 = all)");
  c->add_option("--vocab", a.vocab, "BBPE vocabulary size")->capture_default_str();
  c->add_option("--max-tokens", a.max_tokens,
                "tokens kept per request (the model's sequence length, saved with it); longer "
                "requests are truncated")
    ->capture_default_str();
  c->add_option("--epochs", a.epochs, "maximum epochs (early stopping on validation loss)")
    ->capture_default_str();
  c->add_option("--batch", a.batch, "batch size")->capture_default_str();
  c->add_option("--patience", a.patience, "epochs without improvement before stopping")
    ->capture_default_str();
  c->add_option("--patience-after-drop", a.patience_after_drop,
                "patience once the learning rate has been lowered (0 = --patience)")
    ->capture_default_str();
  c->add_option("--lr-drops", a.lr_drops,
                "on a plateau (--patience epochs without a better validation loss) go back to "
                "the best epoch and multiply the learning rate by --lr-decay, at most this many "
                "times, before stopping (0 = stop at the first plateau)")
    ->capture_default_str();
  c->add_option("--lr-decay", a.lr_decay, "factor of each learning-rate drop (--lr-drops)")
    ->check(CLI::Range(0.01f, 0.99f))
    ->capture_default_str();
  c->add_option("--min-steps", a.min_steps,
                "raise the epoch limit for small training sets to allow this many steps")
    ->capture_default_str();
  c->add_option("--seed", a.seed, "seed for splits, initialisation, shuffling")
    ->capture_default_str();
  c->add_option("--cookie", a.cookie, "Cookie field in the model input: keep|name_only|drop")
    ->check(CLI::IsMember({"keep", "name_only", "drop"}))
    ->capture_default_str();
  c->add_flag("--sort-headers", a.sort_headers, "sort header fields by name");
  c->add_option("--digits", a.digits,
                "digits in the model input: zero (each written as 0, except in %XX escapes) "
                "or keep")
    ->check(CLI::IsMember({"zero", "keep"}))
    ->capture_default_str();
  c->add_option("--value-letters", a.value_letters,
                "letters of parameter values in the model input: fold (each written as a or A) "
                "or keep")
    ->check(CLI::IsMember({"fold", "keep"}))
    ->capture_default_str();
  c->add_option("--engine", a.engine,
                "TextCNN engine (both train comb::kernels::textcnn): fused (on the CPU, scoring "
                "with comb::kernels::textcnn_fused) or kernels (training and scoring op by op, "
                "CUDA where present)")
    ->check(CLI::IsMember({"fused", "kernels"}))
    ->capture_default_str();
  c->add_option("--validation", a.validation, "validation share for early stopping")
    ->capture_default_str();
  c->add_option("--decode", a.decode,
                "decode percent (double too), HTML entities and JS escapes in values before "
                "folding, and fold non-ASCII letters to a: on|off")
    ->check(CLI::IsMember({"on", "off"}))
    ->capture_default_str();
  c->add_option("--keywords", a.keywords,
                "keep SQL/shell/HTML/JS/template/LDAP keywords of values unfolded: a list "
                "version (1; 2 adds MongoDB operators, LDAP attributes, XPath functions, "
                "header names), on (the latest, "
                  + std::to_string(keyword_list_version) + ") or off")
    ->check(CLI::IsMember({"on", "off", "1", "2"}))
    ->capture_default_str();
  c->add_option("--header-urls", a.header_urls,
                "fold header values that are http(s) URLs (Referer) like the request's URL: "
                "on|off")
    ->check(CLI::IsMember({"on", "off"}))
    ->capture_default_str();
  c->add_option("--originals", a.originals,
                "with --decode on: a value that decoding changed is followed by its original "
                "(escapes kept, letters and digits folded): on|off")
    ->check(CLI::IsMember({"on", "off"}))
    ->capture_default_str();
  c->add_option("--row-lengths", a.row_lengths,
                "train each request of a batch at its own length, padding masked (off: as "
                "padded to the batch's longest): on|off")
    ->check(CLI::IsMember({"on", "off"}))
    ->capture_default_str();
  c->add_option("--payloads", a.payloads,
                "payload sets (attacks/*.txt, benign/*.txt) put into CSIC normal requests for "
                "training, and for calibrating the saved threshold; default the project's "
                "apps/anomaly/payloads, 'none' for CSIC only");
  c->add_option("--holdout", a.holdout,
                "attack families (comma-separated) left out of training, to measure recall on "
                "families never seen");
  c->add_option("--attack-copies", a.attack_copies, "requests made from each training attack line")
    ->capture_default_str();
  c->add_option("--benign-copies", a.benign_copies, "requests made from each training benign line")
    ->capture_default_str();
  c->add_option("--site-benign", a.site_benign,
                "raw HTTP requests of another site, all benign (Nectar's benign sessions, "
                "written by apps/anomaly/site_benign.sh), split by a hash of each request "
                "(60/20/20): train-use ones are trained on (see --site-train), calibration-use "
                "ones hold the saved threshold's false positives at the target too, test-use "
                "ones are reported by `eval --ood --ood-lines test`");
  c->add_option("--site-train", a.site_train,
                "with --site-benign: train on its train-use requests, as normal and with the "
                "payload lines put into them (off: they calibrate too, never trained on)")
    ->check(CLI::IsMember({"on", "off"}))
    ->capture_default_str();
  c->add_option("--target-fp", a.target_fp,
                "false-positive target of the saved threshold on each calibration group "
                "(a margin under the 1% goal, for traffic calibration did not see)")
    ->capture_default_str();
  c->add_option("--augmented-weight", a.augmented_weight,
                "loss weight of each training request made from the payload sets or another "
                "site's requests (CSIC's own weigh 1)")
    ->check(CLI::Range(0.01f, 100.0f))
    ->capture_default_str();
  c->add_flag("--quiet", a.quiet, "no progress output");
}

std::string repo_root() {
#ifdef COMB_SOURCE_DIR
  return COMB_SOURCE_DIR;
#else
  return ".";
#endif
}

detector_config make_config(const common_args& a) {
  detector_config c;
  c.vocab_size = a.vocab;
  c.text.cookie = a.cookie == "keep"   ? text_options::cookie_mode::keep
                  : a.cookie == "drop" ? text_options::cookie_mode::drop
                                       : text_options::cookie_mode::name_only;
  c.text.sort_headers = a.sort_headers;
  c.text.zero_digits = a.digits == "zero";
  c.text.fold_value_letters = a.value_letters == "fold";
  c.text.decode = a.decode == "on";
  c.text.keywords = a.keywords == "on"    ? keyword_list_version
                    : a.keywords == "off" ? 0
                                          : std::stoi(a.keywords);
  c.text.header_urls = a.header_urls == "on";
  c.text.originals = a.originals == "on";
  c.model.vocab = static_cast<int>(a.vocab);
  c.model.seed = a.seed;
  c.model.seq_len = static_cast<int>(a.max_tokens);
  c.model.engine = a.engine;
  return c;
}

train_options make_train_options(const common_args& a) {
  train_options o;
  o.max_epochs = a.epochs;
  o.batch = a.batch;
  o.patience = a.patience;
  o.patience_after_drop = a.patience_after_drop;
  o.lr_drops = a.lr_drops;
  o.lr_decay = a.lr_decay;
  o.min_steps = a.min_steps;
  o.seed = a.seed;
  o.progress = a.quiet ? nullptr : &std::cerr;
  o.augmented_weight = a.augmented_weight;
  o.row_lengths = a.row_lengths == "on";
  return o;
}

csic_dataset load_data(const common_args& a) {
  auto dir = a.data.empty() ? default_csic_dir(repo_root()) : a.data;
  auto ds = load_csic(dir, a.limit);
  if (!ds)
    fail(describe(ds.error()));
  if (!a.quiet)
    std::cerr << "data: " << ds->requests.size() << " requests (" << ds->counts[0] << " normal, "
              << ds->counts[1] << " anomalous) from " << dir << "\n";
  return std::move(*ds);
}

std::vector<std::string> split_list(const std::string& s) {
  std::vector<std::string> out;
  std::stringstream ss(s);
  std::string part;
  while (std::getline(ss, part, ','))
    if (!part.empty())
      out.push_back(part);
  return out;
}

/// The payload sets named by --payloads (none for 'none').
std::optional<payload_dir> load_payloads(const common_args& a) {
  if (a.payloads == "none")
    return std::nullopt;
  auto dir = a.payloads.empty() ? default_payload_dir(repo_root()) : a.payloads;
  auto d = load_payload_dir(dir);
  if (!d)
    fail("--payloads: " + describe(d.error()));
  if (!a.quiet)
    std::cerr << "payload sets: " << d->attacks.size() << " attack families, " << d->benign.size()
              << " benign sets from " << dir << "\n";
  return std::move(*d);
}

augment_options make_augment(const common_args& a, const payload_dir* p) {
  augment_options o;
  o.payloads = p;
  o.holdout = split_list(a.holdout);
  o.attack_copies = a.attack_copies;
  o.benign_copies = a.benign_copies;
  o.seed = a.seed;
  return o;
}

/// The requests of --site-benign whose use_of (of the raw text) is among `uses`, parsed.
/// A unit that does not parse as HTTP fails, naming its number.
std::vector<http_request> load_site(const common_args& a, const std::vector<line_use>& uses) {
  std::vector<http_request> out;
  if (a.site_benign.empty())
    return out;
  std::ifstream f(a.site_benign, std::ios::binary);
  if (!f)
    fail("--site-benign: cannot read " + a.site_benign);
  std::string text{std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>()};
  auto units = split_http_stream(text);
  if (units.empty())
    fail("--site-benign: " + a.site_benign + " holds no HTTP request");
  for (size_t i = 0; i < units.size(); ++i) {
    if (std::find(uses.begin(), uses.end(), use_of(units[i])) == uses.end())
      continue;
    auto r = parse_http_request(units[i]);
    if (!r)
      fail("--site-benign: request " + std::to_string(i + 1) + " of " + a.site_benign
           + " is not HTTP: " + describe(r.error()));
    out.push_back(std::move(*r));
  }
  if (!a.quiet)
    std::cerr << "site requests: " << out.size() << " of " << units.size() << " from "
              << a.site_benign << "\n";
  return out;
}

std::vector<const http_request*> pointers(const std::vector<http_request>& rs) {
  std::vector<const http_request*> out;
  out.reserve(rs.size());
  for (auto& r : rs)
    out.push_back(&r);
  return out;
}

/// The site's requests that calibrate: calibration-use ones; train-use ones too when they
/// were not trained on.
std::vector<line_use> site_calibration_uses(const common_args& a) {
  if (a.site_train == "on")
    return {line_use::calibration};
  return {line_use::train, line_use::calibration};
}

void check_args(const common_args& a) {
  if (a.vocab < 258 || a.vocab > (1u << 20))
    fail("--vocab must be in 258..1048576, got " + std::to_string(a.vocab));
  if (a.max_tokens < 4 || a.max_tokens > 65536)
    fail("--max-tokens must be in 4..65536, got " + std::to_string(a.max_tokens));
  if (a.epochs < 1 || a.batch < 1 || a.patience < 1)
    fail("--epochs, --batch and --patience must be at least 1");
  if (a.patience_after_drop < 0)
    fail("--patience-after-drop must be at least 0, got " + std::to_string(a.patience_after_drop));
  if (a.lr_drops < 0)
    fail("--lr-drops must be at least 0, got " + std::to_string(a.lr_drops));
  if (!(a.validation > 0 && a.validation < 0.5))
    fail("--validation must be in (0, 0.5)");
  if (!(a.target_fp > 0 && a.target_fp < 0.5))
    fail("--target-fp must be in (0, 0.5)");
}

void print_table2_row(const char* name, const std::vector<experiment_result>& rs) {
  std::vector<binary_metrics> ms;
  double secs = 0;
  int epochs = 0;
  for (auto& r : rs) {
    ms.push_back(r.metrics);
    for (auto s : r.training.epoch_seconds)
      secs += s;
    epochs += r.training.epochs_run;
  }
  auto s = summarize(ms);
  std::printf("%s\n  %s\n  training: %d epochs in total, %.1f s/epoch\n", name,
              s.to_string().c_str(), epochs, epochs > 0 ? secs / epochs : 0.0);
  std::fflush(stdout);
}

// --- train ------------------------------------------------------------------------------

void run_train(const common_args& a, const std::string& out) {
  check_args(a);
  auto ds = load_data(a);
  auto payloads = load_payloads(a);
  auto aug = make_augment(a, payloads ? &*payloads : nullptr);
  std::vector<http_request> site_train;
  if (a.site_train == "on" && payloads) {
    site_train = load_site(a, {line_use::train});
    aug.site = pointers(site_train);
  }
  auto site = load_site(a, site_calibration_uses(a));
  auto t = train_detector(ds, make_config(a), a.validation, make_train_options(a), aug, a.target_fp,
                          pointers(site));
  if (!t)
    fail(describe(t.error()));
  if (auto err = t->model.save(out))
    fail(describe(err));
  std::printf("model saved to %s (backend %s, best epoch %d of %d)\nvalidation (%zu requests): "
              "%s\n",
              out.c_str(), t->model.model().backend().c_str(), t->training.best_epoch,
              t->training.epochs_run, t->validation_size, t->validation.to_string().c_str());
  if (t->augmented > 0)
    std::printf("training had %zu requests made from the payload sets%s%s\n", t->augmented,
                a.holdout.empty() ? "" : "; families held out: ", a.holdout.c_str());
  if (t->calibration)
    std::printf("saved threshold: %s\n", t->calibration->describe().c_str());
}

/// Exits with a named error when `path` (the `what`, e.g. "model file") is missing or a folder:
/// reading a folder as a file fails deep in the stream library with a bare "Is a directory".
void require_file(const std::string& path, const std::string& what) {
  std::error_code ec;
  auto st = std::filesystem::status(path, ec);
  if (!std::filesystem::exists(st))
    fail("not_found: " + what + " " + path + ": no such file", 2);
  if (std::filesystem::is_directory(st))
    fail("invalid_argument: " + what + " " + path + " is a folder, not a file", 2);
}

// --- calibrate --------------------------------------------------------------------------

/// `calibrate`: chooses a saved model's threshold again (other target, other site requests)
/// on what training left out (the same validation split: give the same --seed and
/// --validation as training did), and writes the model with it.
void run_calibrate(const common_args& a, const std::string& in, const std::string& out) {
  check_args(a);
  require_file(in, "model file");
  auto d = detector::load(in);
  if (!d)
    fail(describe(d.error()));
  auto ds = load_data(a);
  auto payloads = load_payloads(a);
  if (!payloads)
    fail("calibrate needs the payload sets (--payloads DIR, not 'none')");
  auto site = load_site(a, site_calibration_uses(a));
  auto held = held_out_normal(ds, a.validation, a.seed);
  auto c = calibrate(*d, held, *payloads, a.target_fp, a.seed + 29, pointers(site));
  if (!c)
    fail(describe(c.error()));
  std::printf("threshold was %.6f\n", static_cast<double>(d->config().threshold));
  d->set_threshold(c->threshold, c->describe());
  if (auto err = d->save(out))
    fail(describe(err));
  std::printf("model saved to %s\nsaved threshold: %s\n", out.c_str(), c->describe().c_str());
}

// --- eval -------------------------------------------------------------------------------

struct eval_args {
  int folds = 5;
  int run_folds = 0;
  int first_fold = 1;
  std::string protocol = "both";
  std::string shares = "80,50,25,10,5";
  bool ablations = false;
  bool skip_kfold = false;
  bool crs = false;
  size_t crs_sample = 0;
  std::string errors;
  std::string ood;
  std::string model;
  std::string ood_lines = "all";
  std::string validation_lines = "own";
  bool plateau_metrics = false;
  size_t ood_per_set = 400;
  double ood_fp = 0.01;
};

std::vector<double> parse_shares(const std::string& s) {
  std::vector<double> out;
  if (s == "none" || s.empty())
    return out;
  std::stringstream ss(s);
  std::string part;
  while (std::getline(ss, part, ',')) {
    double v = 0;
    try {
      v = std::stod(part);
    } catch (const std::exception&) {
      fail("--shares: '" + part + "' is not a percentage");
    }
    if (!(v > 0 && v < 100))
      fail("--shares: " + part + " is not in (0, 100)");
    out.push_back(v / 100.0);
  }
  return out;
}

/// `eval --ood DIR`: the saved model on DIR's payload sets put into CSIC normal requests
/// (normalTrafficTest), beside CRS PL1/PL2 and their OR, at the saved threshold and at the
/// threshold that keeps false positives on DIR's benign sets at --ood-fp.
void run_ood(const common_args& a, const eval_args& e) {
  if (e.model.empty())
    fail("--ood needs --model FILE (a model written by `comb anomaly train`)");
  require_file(e.model, "model file");
  auto d = detector::load(e.model);
  if (!d)
    fail(describe(d.error()));
  auto dir = load_payload_dir(e.ood);
  if (!dir)
    fail("--ood: " + describe(dir.error()));
  auto ds = load_data(a);
  std::vector<const http_request*> bases;
  for (auto& r : ds.requests)
    if (r.label == 0 && r.file == 1)
      bases.push_back(&r.request);
  if (bases.empty())
    for (auto& r : ds.requests)
      if (r.label == 0)
        bases.push_back(&r.request);
  ood_options oo;
  if (e.ood_lines == "test")
    oo.uses = {line_use::test};
  oo.per_set = e.ood_per_set;
  oo.seed = a.seed + 101;
  auto suite = make_ood_suite(bases, *dir, oo);
  if (!suite)
    fail(describe(suite.error()));
  std::printf("model %s: saved threshold %.6f%s%s\n", e.model.c_str(),
              static_cast<double>(d->config().threshold),
              d->config().calibration.empty() ? " (not calibrated)" : "\n  ",
              d->config().calibration.c_str());
  std::printf("OOD sets from %s (%s lines, at most %zu per set): %zu requests into %zu CSIC "
              "normal requests\n",
              e.ood.c_str(), e.ood_lines.c_str(), e.ood_per_set, suite->cases.size(), bases.size());
  using clk = std::chrono::steady_clock;
  auto t0 = clk::now();
  std::vector<std::vector<int32_t>> seqs;
  seqs.reserve(suite->cases.size());
  for (auto& c : suite->cases)
    seqs.push_back(d->encode_text(to_model_text(c.request, d->config().text)));
  auto scores = d->score_encoded(seqs);
  if (!scores)
    fail(describe(scores.error()));
  double model_s = std::chrono::duration<double>(clk::now() - t0).count();
  float t_saved = d->config().threshold;
  float t_fp = ood_threshold(*suite, *scores, e.ood_fp);
  std::printf("threshold for <= %.1f%% FP on these benign sets: %.6f\n", e.ood_fp * 100,
              static_cast<double>(t_fp));
  std::vector<ood_column> cols;
  cols.push_back(model_column(*scores, t_saved, "model@saved"));
  cols.push_back(model_column(*scores, t_fp, "model@1%FP"));
#ifdef COMB_ANOMALY_HAVE_CRS
  double crs_s[2] = {0, 0};
  for (int pl : {1, 2}) {
    crs_options co;
    co.paranoia = pl;
    co.allow_accept_charset = true; // every CSIC request carries it (crs_engine.hpp)
    auto eng = crs_engine::create(co);
    if (!eng)
      fail(describe(eng.error()));
    ood_column c{"CRS-PL" + std::to_string(pl), {}};
    auto c0 = clk::now();
    for (auto& k : suite->cases)
      c.flagged.push_back((*eng)->evaluate(k.request).flagged);
    crs_s[pl - 1] = std::chrono::duration<double>(clk::now() - c0).count();
    cols.push_back(std::move(c));
  }
  cols.push_back(or_column(cols[0], cols[2], "saved|PL1"));
  cols.push_back(or_column(cols[1], cols[2], "1%FP|PL1"));
  cols.push_back(or_column(cols[1], cols[3], "1%FP|PL2"));
#endif
  if (!d->config().held_out.empty()) {
    std::string names;
    for (auto& f : d->config().held_out)
      names += (names.empty() ? "" : ", ") + f;
    std::printf("attack families held out of its training: %s\n", names.c_str());
  }
  std::printf("%s", ood_table(*suite, cols, d->config().held_out).c_str());
  if (!a.site_benign.empty()) {
    // The other site's requests calibration did not use (with --ood-lines test), as they came.
    auto site = load_site(a, e.ood_lines == "test" ? std::vector<line_use>{line_use::test}
                                                   : std::vector<line_use>{});
    std::vector<std::vector<int32_t>> ss;
    for (auto& r : site)
      ss.push_back(d->encode_text(to_model_text(r, d->config().text)));
    auto sp = d->score_encoded(ss);
    if (!sp)
      fail(describe(sp.error()));
    auto fp_at = [&](float t) {
      size_t fp = 0;
      for (auto x : *sp)
        fp += x >= t ? 1 : 0;
      return site.empty() ? 0.0 : static_cast<double>(fp) / static_cast<double>(site.size());
    };
    std::printf("site benign requests (%s, %s lines): %zu; FP model@saved %.4f, model@1%%FP "
                "%.4f\n",
                a.site_benign.c_str(), e.ood_lines.c_str(), site.size(), fp_at(t_saved),
                fp_at(t_fp));
    // What the flagged ones have in common that matters most for a site: a Referer with a
    // query (issue 22: a search's raw spaces were most of Nectar's false positives).
    size_t flagged = 0, with_query_referer = 0;
    for (size_t i = 0; i < site.size(); ++i) {
      if ((*sp)[i] < t_saved)
        continue;
      ++flagged;
      for (auto& [k, v] : site[i].headers)
        if (iequals(k, "referer") && v.find('?') != std::string::npos) {
          ++with_query_referer;
          break;
        }
    }
    std::printf("  flagged at the saved threshold: %zu, of which %zu carry a Referer with a "
                "query\n",
                flagged, with_query_referer);
  }
  auto n = static_cast<double>(suite->cases.size());
  std::printf("throughput, one thread: model %.0f req/s (text, encoding, scoring)", n / model_s);
#ifdef COMB_ANOMALY_HAVE_CRS
  std::printf(", CRS PL1 %.0f req/s, PL2 %.0f req/s; model/PL1 ratio %.1f", n / crs_s[0],
              n / crs_s[1], crs_s[0] / model_s);
#endif
  std::printf("\n");
}

void run_eval(const common_args& a, const eval_args& e) {
  if (!e.ood.empty()) {
    run_ood(a, e);
    return;
  }
  check_args(a);
  auto shares = parse_shares(e.shares);
  if (e.folds < 2)
    fail("--folds must be at least 2");
  auto ds = load_data(a);
  auto payloads = load_payloads(a);
  auto aug = make_augment(a, payloads ? &*payloads : nullptr);
  eval_options o;
  if (payloads)
    o.augment = &aug;
  o.config = make_config(a);
  o.train = make_train_options(a);
  o.validation_share = a.validation;
  o.validation = e.validation_lines == "all" ? validation_lines::all : validation_lines::own;
  o.plateau_metrics = e.plateau_metrics;
  o.seed = a.seed;
  o.log = &std::cout;
  std::ofstream errors;
  if (!e.errors.empty()) {
    errors.open(e.errors);
    if (!errors)
      fail("--errors: cannot write " + e.errors);
    o.errors = &errors;
  }
  std::vector<tokenizer_protocol> protocols;
  if (e.protocol == "1" || e.protocol == "both")
    protocols.push_back(tokenizer_protocol::training_part);
  if (e.protocol == "2" || e.protocol == "both")
    protocols.push_back(tokenizer_protocol::all_data);
  std::printf(
    "CSIC 2010: %zu requests; vocab %zu, max %zu tokens, cookie %s, digits %s, "
    "value letters %s, decode %s, originals %s, keywords %s, batch %d, at most %d epochs, patience "
    "%d (after a drop %d), %d learning-rate drops of %g, validation lines %s, row lengths %s, seed "
    "%llu\n",
    ds.requests.size(), a.vocab, a.max_tokens, a.cookie.c_str(), a.digits.c_str(),
    a.value_letters.c_str(), a.decode.c_str(), a.originals.c_str(), a.keywords.c_str(), a.batch,
    a.epochs, a.patience, a.patience_after_drop > 0 ? a.patience_after_drop : a.patience,
    a.lr_drops, static_cast<double>(a.lr_decay), e.validation_lines.c_str(), a.row_lengths.c_str(),
    static_cast<unsigned long long>(a.seed));
  if (payloads)
    std::printf("training parts also get payload sets put into their normal requests (test "
                "parts stay CSIC's own)%s%s\n",
                a.holdout.empty() ? "" : "; held out: ", a.holdout.c_str());
  for (auto p : protocols) {
    std::printf("\n== Table 2 (CSIC row), stratified %d-fold, %s\n", e.folds, to_string(p).c_str());
    std::fflush(stdout);
    if (!e.skip_kfold) {
      auto rs = run_kfold(ds, e.folds, p, o, e.run_folds, e.first_fold);
      if (!rs)
        fail(describe(rs.error()));
      print_table2_row(e.first_fold > 1  ? "(partial: later folds only)"
                       : e.run_folds > 0 ? "(partial: first folds only)"
                                         : "result",
                       *rs);
    }
    if (shares.empty())
      continue;
    std::printf("\n== Table 3, training share sweep (stratified train/test split), %s\n",
                to_string(p).c_str());
    std::printf("  %-6s %-9s %-9s %-9s %-9s %s\n", "train", "accuracy", "precision", "recall", "F1",
                "(train/test requests, epochs)");
    auto rows = run_share_sweep(ds, shares, p, o, [](const share_result& row) {
      auto& r = row.result;
      std::printf("  %4.0f%%  %.4f    %.4f    %.4f    %.4f    (%zu/%zu, %d epochs)\n",
                  row.share * 100, r.metrics.accuracy(), r.metrics.precision(), r.metrics.recall(),
                  r.metrics.f1(), r.train_size, r.test_size, r.training.epochs_run);
      std::fflush(stdout);
    });
    if (!rows)
      fail(describe(rows.error()));
  }
  if (e.ablations) {
    std::printf("\n== Ablations (protocol 1, one stratified 80/20 split): does the model key "
                "on session cookies or header order?\n");
    auto rows = run_ablations(ds, o, [](const ablation_result& row) {
      std::printf("  %-55s %s\n", row.variant->name, row.result.metrics.to_string().c_str());
      std::fflush(stdout);
    });
    if (!rows)
      fail(describe(rows.error()));
  }
  if (e.crs) {
#ifdef COMB_ANOMALY_HAVE_CRS
    std::printf("\n== Peer: ModSecurity (libmodsecurity3) + OWASP CRS 3.3.4, same requests, "
                "one thread\n");
    auto reps = run_crs_peers(ds.requests, e.crs_sample, [](const crs_report& rep) {
      std::printf("  %-36s %s  %.0f req/s\n    rules on false positives (rule:count): %s\n",
                  rep.engine.c_str(), rep.metrics.to_string().c_str(), rep.requests_per_second,
                  rep.top_false_positive_rules(8).c_str());
      std::fflush(stdout);
    });
    if (!reps)
      fail(describe(reps.error()));
#else
    fail("this build has no libmodsecurity (--crs unavailable)");
#endif
  }
}

// --- score ------------------------------------------------------------------------------

/// After the scores: when no input at all was an HTTP request the file was not one of
/// requests (binary data, the wrong file): the scores were printed, the exit code says so.
void refuse_if_no_http(size_t not_http, size_t inputs, const std::string& where) {
  if (inputs > 0 && not_http == inputs)
    fail("corrupt_data: " + where + " holds no HTTP request (none of its " + std::to_string(inputs)
         + " input(s) parses as one: binary data or the wrong file?)");
}

/// The requests to score: the file `input`, or stdin for "" or "-".
std::string read_requests(const std::string& input) {
  std::string text;
  if (!input.empty() && input != "-")
    require_file(input, "request file");
  if (input.empty() || input == "-") {
    text.assign(std::istreambuf_iterator<char>(std::cin), std::istreambuf_iterator<char>());
  } else {
    std::ifstream f(input, std::ios::binary);
    if (!f)
      fail("cannot read requests from " + input);
    text.assign(std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>());
  }
  return text;
}

/// One output line of `comb anomaly score`: number, probability, verdict, first line.
void print_scored(size_t i, float probability, bool parsed, const std::string& first_line,
                  bool anomalous) {
  std::printf("%zu\t%.6f\t%s\t%s%s\n", i + 1, probability, anomalous ? "anomalous" : "normal",
              parsed ? "" : "[not HTTP] ", first_line.c_str());
}

/// `comb anomaly score --with-crs`: CRS beside the model.
struct crs_args {
  bool on = false;
  int paranoia = 1;
};

void run_score(const std::string& model_path, const std::string& input, int batch, float threshold,
               const crs_args& crs) {
  require_file(model_path, "model file");
  auto d = detector::load(model_path);
  if (!d)
    fail(describe(d.error()));
  if (threshold < 0) {
    threshold = d->config().threshold;
    std::cerr << "comb anomaly score: threshold " << threshold << " ("
              << (d->config().calibration.empty() ? "the model file's default, not calibrated"
                                                  : "saved with the model, calibrated")
              << ")\n";
  }
  auto text = read_requests(input);
  auto scored = score_http_stream(*d, text, batch);
  if (!scored)
    fail(describe(scored.error()));
  if (scored->empty()) {
    std::cerr << "comb anomaly score: no request in "
              << (input.empty() || input == "-" ? std::string{"stdin"} : input)
              << " (empty input)\n";
    return;
  }
#ifdef COMB_ANOMALY_HAVE_CRS
  std::unique_ptr<crs_engine> engine;
  std::vector<std::string_view> units;
  if (crs.on) {
    crs_options co;
    co.paranoia = crs.paranoia;
    co.allow_accept_charset = true; // browsers send it; stock CRS 3.3.4 flags it (crs_engine.hpp)
    auto e = crs_engine::create(co);
    if (!e)
      fail(describe(e.error()));
    engine = std::move(*e);
    units = split_http_stream(text);
    std::printf("#\tscore\tmodel\tcrs\tcrs_rules\tcombined\trequest\n");
  }
#else
  if (crs.on)
    fail("this build has no libmodsecurity (--with-crs unavailable)");
#endif
  size_t not_http = 0;
  for (size_t i = 0; i < scored->size(); ++i) {
    auto& r = (*scored)[i];
    if (!r.parsed)
      ++not_http;
    bool model_says = r.probability >= threshold;
#ifdef COMB_ANOMALY_HAVE_CRS
    if (engine) {
      std::string verdict = "n/a", rules = "-";
      bool crs_says = false;
      if (auto req = parse_http_request(units[i])) {
        auto v = engine->evaluate(*req);
        crs_says = v.flagged;
        verdict = v.flagged ? "flagged" : "pass";
        if (!v.rules.empty()) {
          rules.clear();
          for (auto id : v.rules)
            rules += (rules.empty() ? "" : ",") + std::to_string(id);
        }
      }
      std::printf("%zu\t%.6f\t%s\t%s\t%s\t%s\t%s%s\n", i + 1, r.probability,
                  model_says ? "anomalous" : "normal", verdict.c_str(), rules.c_str(),
                  model_says || crs_says ? "anomalous" : "normal", r.parsed ? "" : "[not HTTP] ",
                  r.first_line.c_str());
      continue;
    }
#endif
    print_scored(i, r.probability, r.parsed, r.first_line, model_says);
  }
  if (not_http > 0)
    std::cerr << "comb anomaly score: " << not_http << " of " << scored->size()
              << " inputs are not HTTP requests; they were scored on their raw bytes\n";
  std::fflush(stdout);
  refuse_if_no_http(not_http, scored->size(), input.empty() || input == "-" ? "stdin" : input);
}

/// `comb anomaly score --node`: where the requests go and how long to wait.
struct node_score_args {
  std::string node;
  std::string role = "admin";
  std::string source = "comb anomaly score";
  int timeout_s = 600;
  runtime::tls_config tls; // --tls-*: the cluster's CA and a client certificate
  std::string secret_file; // --secret-file: a cluster without TLS that has a shared secret
};

/// Scores the requests of `input` on a node: anomaly.score calls of at most max_call_bytes
/// each (the model `model` is a name in the node's model store), then anomaly.results until
/// every request has its score. Prints what run_score prints.
void run_score_node(const node_score_args& a, const std::string& model, const std::string& input,
                    float threshold) {
  auto where = input.empty() || input == "-" ? std::string{"stdin"} : input;
  auto text = read_requests(input);
  auto units = split_http_stream(text);
  if (units.empty()) {
    std::cerr << "comb anomaly score: no request in " << where << " (empty input)\n";
    return;
  }
  auto ep = comb::parse_endpoint(a.node);
  if (!ep)
    fail("--node: " + describe(ep.error()), 2);
  runtime::system_config cfg{2};
  use_tls("anomaly score", cfg, a.tls);
  caf::actor_system sys{cfg};
  auto c = runtime::client::connect(sys, *ep, std::chrono::seconds{10}, a.tls,
                                    read_secret("anomaly score", a.secret_file));
  if (!c)
    fail(describe(c.error()), 3);
  // Calls of whole requests, each at most max_call_bytes of requests (bytes + 4 each).
  struct sent_call {
    std::string key;
    size_t first = 0;
    size_t count = 0;
    bool done = false;
  };
  std::vector<sent_call> calls;
  for (size_t i = 0; i < units.size();) {
    size_t bytes = 0, e = i;
    bool utf8 = true;
    while (e < units.size() && bytes + units[e].size() + 4 <= max_call_bytes) {
      bytes += units[e].size() + 4;
      utf8 = utf8 && is_utf8(units[e]);
      ++e;
    }
    if (e == i)
      fail("request " + std::to_string(i + 1) + " of " + where + " has "
           + std::to_string(units[i].size()) + " bytes, more than the "
           + std::to_string(max_call_bytes >> 20) + " MiB one anomaly.score call carries");
    auto reqs = nlohmann::json::array();
    for (size_t j = i; j < e; ++j)
      reqs.push_back(utf8 ? std::string{units[j]} : base64_encode(units[j]));
    nlohmann::json args{{"requests", std::move(reqs)},
                        {"model", model},
                        {"source", a.source},
                        {"encoding", utf8 ? "text" : "base64"}};
    if (threshold >= 0) // else the model's saved threshold labels the rows
      args["threshold"] = threshold;
    auto r = c->call("anomaly.score", args.dump(), a.role);
    if (!r)
      fail("anomaly.score: " + describe(r.error()));
    calls.push_back({r->value("call", ""), i, e - i});
    i = e;
  }
  // Wait for every score, saying how far it got every few seconds.
  std::vector<float> score(units.size(), 0.0f);
  std::vector<bool> parsed(units.size(), false);
  std::vector<bool> anomalous(units.size(), false);
  using clock = std::chrono::steady_clock;
  auto start = clock::now();
  auto deadline = start + std::chrono::seconds{a.timeout_s};
  auto next_report = start + std::chrono::seconds{5};
  auto pause = std::chrono::milliseconds{2};
  size_t scored = 0;
  while (scored < units.size()) {
    for (auto& call : calls) {
      if (call.done)
        continue;
      auto r = c->call("anomaly.results", nlohmann::json{{"call", call.key}}.dump(), a.role);
      if (!r)
        fail("anomaly.results: " + describe(r.error()));
      if (r->value("status", "") == "failed")
        fail("call " + call.key + " (requests " + std::to_string(call.first + 1) + ".."
             + std::to_string(call.first + call.count) + ") failed: " + r->value("error", ""));
      if (r->value("status", "") != "scored")
        break; // calls finish about in order: ask again for this one first
      const auto& rows = r->at("scores");
      if (rows.size() != call.count)
        fail("call " + call.key + " has " + std::to_string(rows.size()) + " scores for "
             + std::to_string(call.count) + " requests");
      // Rows come in id order, and ids follow the requests' order in the call.
      for (size_t j = 0; j < call.count; ++j) {
        score[call.first + j] = rows[j].value("score", 0.0f);
        parsed[call.first + j] = rows[j].value("parsed", false);
        anomalous[call.first + j] = rows[j].value("label", "") == "anomalous";
      }
      call.done = true;
      scored += call.count;
    }
    if (scored == units.size())
      break;
    auto now = clock::now();
    if (now >= deadline)
      fail("timed out after " + std::to_string(a.timeout_s) + " s with " + std::to_string(scored)
             + " of " + std::to_string(units.size())
             + " requests scored (the calls stay queued on the node; read them later with "
               "anomaly.results {\"call\": ...}, e.g. "
             + calls.front().key + ")",
           4);
    if (now >= next_report) {
      std::cerr << "comb anomaly score: " << scored << " of " << units.size()
                << " requests scored after "
                << std::chrono::duration_cast<std::chrono::seconds>(now - start).count() << " s\n";
      next_report = now + std::chrono::seconds{5};
    }
    std::this_thread::sleep_for(pause);
    pause = std::min(pause * 2, std::chrono::milliseconds{100});
  }
  size_t not_http = 0;
  for (size_t i = 0; i < units.size(); ++i) {
    if (!parsed[i])
      ++not_http;
    print_scored(i, score[i], parsed[i], request_first_line(units[i]), anomalous[i]);
  }
  if (not_http > 0)
    std::cerr << "comb anomaly score: " << not_http << " of " << units.size()
              << " inputs are not HTTP requests; they were scored on their raw bytes\n";
  std::fflush(stdout);
  refuse_if_no_http(not_http, units.size(), where);
}

} // namespace

void add_anomaly_commands(CLI::App& app) {
  auto* top = app.add_subcommand("anomaly", "HTTP anomaly detector (BBPE + TextCNN, CSIC 2010)");
  top->require_subcommand(1);

  auto ta = std::make_shared<common_args>();
  auto out = std::make_shared<std::string>("anomaly_model.safetensors");
  auto* train = top->add_subcommand("train", "train tokenizer and TextCNN, save one model file");
  add_common(train, *ta);
  train->add_option("--out,-o", *out, "model file to write")->capture_default_str();
  train->callback([ta, out] { run_train(*ta, *out); });

  auto ca = std::make_shared<common_args>();
  auto cin = std::make_shared<std::string>();
  auto cout = std::make_shared<std::string>();
  auto* cal = top->add_subcommand(
    "calibrate", "choose a model's saved threshold again on what its training left out, write "
                 "the model with it");
  add_common(cal, *ca);
  cal->add_option("--model,-m", *cin, "model file written by `comb anomaly train`")->required();
  cal->add_option("--out,-o", *cout, "model file to write (default: the --model file)");
  cal->callback([ca, cin, cout] { run_calibrate(*ca, *cin, cout->empty() ? *cin : *cout); });

  auto ea = std::make_shared<common_args>();
  auto ee = std::make_shared<eval_args>();
  auto* ev = top->add_subcommand(
    "eval", "stratified k-fold (Table 2), training-share sweep (Table 3), ablations, CRS");
  add_common(ev, *ea);
  ev->add_option("--folds", ee->folds, "k of the k-fold")->capture_default_str();
  ev->add_option("--run-folds", ee->run_folds, "run only the first N folds (0 = all)");
  ev->add_option("--first-fold", ee->first_fold,
                 "start at this fold (1-based; with --run-folds 1, one fold, so that folds can "
                 "run in separate processes)")
    ->capture_default_str();
  ev->add_option("--validation-lines", ee->validation_lines,
                 "validation lines for early stopping and learning-rate drops: own (a share of "
                 "CSIC's training part, split off before the payload sets are added, so they "
                 "do not decide the schedule) or all (a share of everything trained on)")
    ->check(CLI::IsMember({"own", "all"}))
    ->capture_default_str();
  ev->add_flag("--plateau-metrics", ee->plateau_metrics,
               "also print the test part's metrics at each plateau that lowers the learning "
               "rate: the model a schedule of that many drops would have kept (one run "
               "measures --lr-drops 0..N)");
  ev->add_option("--errors", ee->errors,
                 "write each misclassified test request (label, score, model text) to FILE");
  ev->add_option("--protocol", ee->protocol,
                 "1 = tokenizer on training part, 2 = on all data (paper), both, or none "
                 "(only --ablations / --crs)")
    ->check(CLI::IsMember({"1", "2", "both", "none"}))
    ->capture_default_str();
  ev->add_option("--shares", ee->shares, "training shares in % for Table 3, or 'none'")
    ->capture_default_str();
  ev->add_flag("--ablations", ee->ablations, "cookie and header-order ablations");
  ev->add_flag("--skip-kfold", ee->skip_kfold, "run only the share sweep for each protocol");
  ev->add_flag("--crs", ee->crs, "also run ModSecurity CRS PL1/PL2, stock and fixed");
  ev->add_option("--crs-sample", ee->crs_sample, "CRS on about N requests (0 = all)");
  ev->add_option("--ood", ee->ood,
                 "evaluate --model on DIR's payload sets (attacks/*.txt, benign/*.txt) put into "
                 "CSIC normal requests: recall per family, FP per benign set, beside CRS PL1/PL2");
  ev->add_option("--model,-m", ee->model, "with --ood: the model file to evaluate");
  ev->add_option("--ood-lines", ee->ood_lines,
                 "with --ood: all lines, or only test-use lines (for the project's own sets, "
                 "whose other lines train and calibrate)")
    ->check(CLI::IsMember({"all", "test"}))
    ->capture_default_str();
  ev->add_option("--ood-per-set", ee->ood_per_set,
                 "with --ood: at most N lines of each set (0 = all)")
    ->capture_default_str();
  ev->add_option("--ood-fp", ee->ood_fp,
                 "with --ood: false-positive target of the second threshold")
    ->capture_default_str();
  ev->callback([ea, ee] { run_eval(*ea, *ee); });

  auto model = std::make_shared<std::string>();
  auto input = std::make_shared<std::string>("-");
  auto batch = std::make_shared<int>(256);
  auto threshold = std::make_shared<float>(-1.0f);
  auto na = std::make_shared<node_score_args>();
  auto crs = std::make_shared<crs_args>();
  auto* sc = top->add_subcommand("score", "print P(anomalous) for each request in a file/stdin");
  sc->add_option("--model,-m", *model,
                 "model file written by `comb anomaly train`; with --node, the name of a model "
                 "in the node's model store (its active version scores)")
    ->required();
  sc->add_option("--node", na->node,
                 "HOST:PORT of a node's gateway: score there (anomaly.score, in calls of at "
                 "most 1 MiB of requests) instead of in this process");
  sc->add_option("--role", na->role, "with --node: role to call as")->capture_default_str();
  sc->add_option("--source", na->source, "with --node: where the requests came from (stored)")
    ->capture_default_str();
  sc->add_option("--timeout", na->timeout_s, "with --node: seconds to wait for every score")
    ->capture_default_str();
  add_tls_flags(sc, na->tls);
  add_secret_flag(sc, na->secret_file);
  sc->add_option("input", *input, "file of raw HTTP requests, or - for stdin")
    ->capture_default_str();
  sc->add_option("--batch", *batch, "requests per batch")->capture_default_str();
  sc->add_option("--threshold", *threshold,
                 "probability at or above which a request is called anomalous (default: the "
                 "threshold saved with the model, calibrated for <= 1% false positives; 0.5 "
                 "for older files)");
  sc->add_flag("--with-crs", crs->on,
               "also run ModSecurity + OWASP CRS on each request: columns score, model verdict, "
               "CRS verdict, CRS rule ids, combined verdict (either one)");
  sc->add_option("--paranoia", crs->paranoia, "with --with-crs: CRS paranoia level 1..4")
    ->check(CLI::Range(1, 4))
    ->capture_default_str();
  sc->callback([model, input, batch, threshold, na, crs] {
    if (*threshold > 1.0f || (*threshold < 0.0f && *threshold != -1.0f))
      fail("--threshold must be in [0, 1]");
    if (*batch < 1)
      fail("--batch must be at least 1");
    if (!na->node.empty()) {
      if (na->timeout_s < 1)
        fail("--timeout must be at least 1 second");
      if (crs->on)
        fail("--with-crs runs in this process only (not with --node)");
      run_score_node(*na, *model, *input, *threshold);
      return;
    }
    run_score(*model, *input, *batch, *threshold, *crs);
  });
}

} // namespace comb::cli

// libmodsecurity3 + OWASP CRS behind crs_engine (see crs_engine.hpp).
#include "apps/anomaly/crs_engine.hpp"

#include "base/errc.hpp"

#include <modsecurity/intervention.h>
#include <modsecurity/modsecurity.h>
#include <modsecurity/rule_message.h>
#include <modsecurity/rules_set.h>
#include <modsecurity/transaction.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>

namespace comb::anomaly {

struct crs_engine::impl {
  std::unique_ptr<modsecurity::ModSecurity> modsec;
  std::unique_ptr<modsecurity::RulesSet> rules;
};

namespace {

/// Server log callback: with RuleMessageLogProperty, `msg` is the RuleMessage of a rule that
/// matched and logged; `data` is the crs_verdict of the request being evaluated.
void on_rule_message(void* data, const void* msg) {
  if (data == nullptr || msg == nullptr)
    return;
  auto* v = static_cast<crs_verdict*>(data);
  auto* rm = static_cast<const modsecurity::RuleMessage*>(msg);
  v->rules.push_back(static_cast<int>(rm->m_ruleId));
  if (rm->m_ruleId == 949110)
    v->flagged = true;
}

std::string origin_form(const std::string& url) {
  auto scheme = url.find("://");
  if (scheme == std::string::npos || scheme > 10)
    return url.empty() ? std::string{"/"} : url;
  auto slash = url.find('/', scheme + 3);
  return slash == std::string::npos ? std::string{"/"} : url.substr(slash);
}

} // namespace

crs_engine::~crs_engine() = default;

caf::expected<std::unique_ptr<crs_engine>> crs_engine::create(const crs_options& opts) {
  if (opts.paranoia < 1 || opts.paranoia > 4)
    return make_error(errc::invalid_argument,
                      "CRS paranoia level " + std::to_string(opts.paranoia) + " is outside 1..4");
  namespace fs = std::filesystem;
  std::error_code ec;
  if (!fs::is_regular_file(opts.setup_file, ec))
    return make_error(errc::not_found, "CRS set-up file " + opts.setup_file
                                         + " is missing (Debian package modsecurity-crs)");
  std::vector<std::string> files;
  for (auto& e : fs::directory_iterator(opts.rules_dir, ec)) {
    auto name = e.path().filename().string();
    if (name.starts_with("REQUEST-") && name.ends_with(".conf"))
      files.push_back(e.path().string());
  }
  if (ec || files.empty())
    return make_error(errc::not_found, "no CRS REQUEST-*.conf rule files in " + opts.rules_dir
                                         + " (Debian package modsecurity-crs)");
  std::sort(files.begin(), files.end());
  std::string conf = "SecRuleEngine On\n"
                     "SecRequestBodyAccess On\n"
                     "SecRequestBodyLimit 13107200\n"
                     "SecRequestBodyNoFilesLimit 1048576\n"
                     "SecRequestBodyLimitAction ProcessPartial\n"
                     "SecPcreMatchLimit 100000\n"
                     "SecPcreMatchLimitRecursion 100000\n"
                     "SecAuditEngine Off\n"
                     "Include "
                     + opts.setup_file + "\n";
  conf += "SecAction \"id:900000,phase:1,nolog,pass,t:none,setvar:tx.paranoia_level="
          + std::to_string(opts.paranoia) + "\"\n";
  if (opts.allow_accept_charset)
    conf += "SecAction \"id:900250,phase:1,nolog,pass,t:none,setvar:'tx.restricted_headers="
            "/content-encoding/ /proxy/ /lock-token/ /content-range/ /if/'\"\n";
  for (auto& f : files)
    conf += "Include " + f + "\n";
  auto e = std::unique_ptr<crs_engine>(new crs_engine);
  e->opts_ = opts;
  e->impl_ = std::make_unique<impl>();
  e->impl_->modsec = std::make_unique<modsecurity::ModSecurity>();
  e->impl_->modsec->setConnectorInformation("comb-anomaly");
  e->impl_->modsec->setServerLogCb(on_rule_message, modsecurity::RuleMessageLogProperty);
  e->impl_->rules = std::make_unique<modsecurity::RulesSet>();
  if (e->impl_->rules->load(conf.c_str(), opts.rules_dir) < 0)
    return make_error(errc::bad_config,
                      "ModSecurity rejects the CRS set-up: " + e->impl_->rules->getParserError());
  return e;
}

crs_verdict crs_engine::evaluate(const http_request& r) const {
  crs_verdict v;
  modsecurity::Transaction t(impl_->modsec.get(), impl_->rules.get(), &v);
  t.processConnection("127.0.0.1", 40000, "127.0.0.1", 8080);
  std::string version = r.version.starts_with("HTTP/") ? r.version.substr(5) : "1.1";
  auto uri = opts_.full_target ? (r.url.empty() ? std::string{"/"} : r.url) : origin_form(r.url);
  t.processURI(uri.c_str(), r.method.c_str(), version.c_str());
  for (auto& [k, val] : r.headers)
    t.addRequestHeader(k, val);
  t.processRequestHeaders();
  if (!r.body.empty())
    t.appendRequestBody(reinterpret_cast<const unsigned char*>(r.body.data()), r.body.size());
  t.processRequestBody();
  if (auto sc = t.m_collections.m_tx_collection->resolveFirst("anomaly_score"); sc && !sc->empty())
    v.score = std::atoi(sc->c_str());
  modsecurity::ModSecurityIntervention it;
  it.status = 200;
  it.pause = 0;
  it.url = nullptr;
  it.log = nullptr;
  it.disruptive = 0;
  if (t.intervention(&it) && it.disruptive) {
    v.flagged = true;
    // The blocking rule's own message reaches the intervention, not the log callback.
    if (std::find(v.rules.begin(), v.rules.end(), 949110) == v.rules.end())
      v.rules.push_back(949110);
  }
  free(it.url);
  free(it.log);
  return v;
}

std::string crs_engine::name() const {
  return "CRS 3.3.4 PL" + std::to_string(opts_.paranoia)
         + (opts_.allow_accept_charset ? " (accept-charset allowed)" : " (stock)")
         + (opts_.full_target ? " full target" : "");
}

} // namespace comb::anomaly

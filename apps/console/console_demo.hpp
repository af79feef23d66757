// comb::apps::console demo steps: what `comb demo` does for the console beyond serving it.
// The demo's login ("analyst", a random password kept in the data folder so that a restarted
// demo keeps it) and the anomaly model that gives Nectar's captured requests their model
// labels, put into the node's model store and activated when a trained file exists. Free
// functions; each call blocks on node calls.
#pragma once

#include "apps/console/accounts.hpp"
#include "apps/console/console_link.hpp"
#include "base/endpoint.hpp"

#include <caf/actor_system.hpp>

#include <caf/expected.hpp>

#include <chrono>
#include <functional>
#include <string>

namespace comb::apps::console {

/// The demo's console password for user "analyst": the one in <data_dir>/console-login.txt
/// when the node's console.accounts still accepts it, else a new random one, set on the node
/// and written to that file (mode 0600).
caf::expected<std::string> demo_login(accounts& acc, const std::string& data_dir);

/// The trained anomaly model file the demo would use: $COMB_ANOMALY_MODEL when set, else
/// anomaly_model.safetensors (`comb anomaly train`'s default --out) in the working directory
/// or in `source_dir`. The first candidate when none exists.
std::string demo_model_file(const std::string& source_dir, bool& exists);

/// Puts `file` into the node's model store as model `name` (a new version unless one with
/// the same digest is stored) and activates it, waiting up to `wait` for the compute process
/// to load it. `say` gets one line per step (what was stored, active, or why not). `admin`
/// must call as a role allowed to run comb.model.* (admin).
caf::error put_and_activate_model(console_link& admin, const std::string& name,
                                  const std::string& file, std::chrono::milliseconds wait,
                                  const std::function<void(const std::string&)>& say);

/// The demo's anomaly model step: when demo_model_file exists, put_and_activate_model as model
/// "waf" (the name Nectar's capture labels with) on `node`, as role admin; when it does not,
/// says how to train one and put it into the running demo (training is too long to run in the
/// demo). Never fails the demo: errors become a line. Lines start "anomaly model: ".
void demo_anomaly_model(caf::actor_system& sys, const endpoint& node, const std::string& source_dir,
                        const std::function<void(const std::string&)>& say);

} // namespace comb::apps::console

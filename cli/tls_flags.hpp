// comb::cli TLS flags: --tls-ca/--tls-cert/--tls-key for every command that serves or reaches
// a node (runtime/tls.hpp), and use_tls() to configure the command's actor system with them.
// Header only; used while the command line is parsed and the command starts.
#pragma once

#include "base/errc.hpp"
#include "cli/commands.hpp"
#include "runtime/system_config.hpp"
#include "runtime/tls.hpp"

#include <CLI/CLI.hpp>

#include <fstream>
#include <iterator>
#include <string>

namespace comb::cli {

/// Adds the three TLS flags to `sub`, filling `tls`. All three, or none: plain TCP (unless a
/// --config gives the cluster's files).
inline void add_tls_flags(CLI::App* sub, runtime::tls_config& tls) {
  sub
    ->add_option("--tls-ca", tls.ca_file,
                 "The cluster CA's certificate (PEM): talk TLS with mutual authentication")
    ->group("TLS");
  sub->add_option("--tls-cert", tls.cert_file, "This side's certificate (PEM), from that CA")
    ->group("TLS");
  sub->add_option("--tls-key", tls.key_file, "Its unencrypted private key (PEM)")->group("TLS");
}

/// Adds --secret-file to `sub`: the file holding the cluster's shared secret (clusters
/// without TLS; README "Clusters").
inline void add_secret_flag(CLI::App* sub, std::string& file) {
  sub
    ->add_option("--secret-file", file,
                 "File holding the cluster's shared secret (a cluster without TLS that has one)")
    ->group("TLS");
}

/// The secret in `file` (trailing newlines dropped), "" when no file is given; fails
/// command `cmd` (exit 2) when the file cannot be read or is empty.
inline std::string read_secret(const std::string& cmd, const std::string& file) {
  if (file.empty())
    return {};
  std::ifstream in{file, std::ios::binary};
  std::string s{std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
  while (!s.empty() && (s.back() == '\n' || s.back() == '\r'))
    s.pop_back();
  if (!in.good() && !in.eof())
    fail(cmd, make_error(errc::bad_config, "--secret-file " + file + ": cannot be read"), 2);
  if (s.empty())
    fail(cmd, make_error(errc::bad_config, "--secret-file " + file + ": missing or empty"), 2);
  return s;
}

/// Gives `cfg` the TLS files of `tls` before the command makes its actor system; a missing,
/// unreadable or mismatched file fails command `cmd` (exit 2) naming it. No files: plain TCP.
inline void use_tls(const std::string& cmd, runtime::system_config& cfg,
                    const runtime::tls_config& tls) {
  if (auto err = cfg.set_tls(tls))
    fail(cmd, err, 2);
}

} // namespace comb::cli

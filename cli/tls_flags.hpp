// comb::cli TLS flags: --tls-ca/--tls-cert/--tls-key for every command that serves or reaches
// a node (runtime/tls.hpp). Header only; used while the command line is parsed.
#pragma once

#include "runtime/tls.hpp"

#include <CLI/CLI.hpp>

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

} // namespace comb::cli

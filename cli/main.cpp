// Entry point of the `comb` binary: builds the CLI11 command tree and runs the chosen command.
// Before anything else it blocks SIGINT/SIGTERM (serving commands take them with sigwait) and
// makes a crash say which signal ended the process.
#include "cli/commands.hpp"

#include "apps/apps.hpp"
#include "base/errc.hpp"
#include "base/stop_signals.hpp"

#include <csignal>
#include <cstring>
#include <exception>
#include <iostream>
#include <string>

#include <execinfo.h>
#include <pthread.h>
#include <unistd.h>

namespace comb::cli {

void fail(const std::string& cmd, const caf::error& e, int code) {
  std::cerr << "comb " << cmd << ": " << describe(e) << "\n";
  throw CLI::RuntimeError(code);
}

} // namespace comb::cli

namespace {

pthread_t main_thread;

// SIGINT/SIGTERM taken by a thread that has them unblocked go on to the main thread, where
// they are blocked until its sigwait takes them. Such threads exist before main() runs:
// OpenBLAS starts its pool when the loader runs its constructor, with nothing blocked, and a
// SIGTERM the kernel gave one of them ended `comb node` with status 143 (death by the signal).
void forward_stop_signal(int sig) {
  pthread_kill(main_thread, sig);
}

// The commands that serve until SIGINT/SIGTERM and take it with sigwait: "node" (not "node
// status"), "demo", "compute", "console" (not "console add-user"), "nectar serve".
bool waits_for_stop_signal(const CLI::App& app) {
  std::string path;
  for (const CLI::App* a = &app;;) {
    auto subs = a->get_subcommands();
    if (subs.empty())
      break;
    a = subs.front();
    path += (path.empty() ? "" : " ") + a->get_name();
  }
  return path == "node" || path == "demo" || path == "compute" || path == "console"
         || path == "nectar serve";
}

// A fatal signal (a crash) says what it was on stderr, with a backtrace, then ends the process
// with that signal as before: a node that crashes at start no longer exits without a word.
void report_fatal_signal(int sig) {
  char msg[96] = "comb: fatal signal ";
  const char* name = sigabbrev_np(sig);
  std::strncat(msg, name ? name : "?", 16);
  std::strcat(msg, "; backtrace:\n");
  ssize_t ignored = ::write(STDERR_FILENO, msg, std::strlen(msg));
  void* frames[64];
  int n = backtrace(frames, 64);
  backtrace_symbols_fd(frames, n, STDERR_FILENO);
  static_cast<void>(ignored); // nothing to do about a failed write in a dying process
  std::signal(sig, SIG_DFL);
  ::raise(sig);
}

void report_fatal_signals() {
  // backtrace() loads libgcc on its first call: do that now, not inside the handler.
  void* frame;
  backtrace(&frame, 1);
  struct sigaction sa {};
  sa.sa_handler = report_fatal_signal;
  sa.sa_flags = SA_RESETHAND | SA_NODEFER;
  sigemptyset(&sa.sa_mask);
  for (int sig : {SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGABRT})
    sigaction(sig, &sa, nullptr);
}

} // namespace

int main(int argc, char** argv) {
  // SIGINT/SIGTERM are blocked first, so that every thread started later has them blocked,
  // and threads started before (by libraries) pass them on to this one: a serving command
  // takes a stop signal with sigwait however early it comes (it waits, pending, until then).
  // `comb node` blocked them only once its config was read, and OpenBLAS's threads never, so
  // a SIGTERM could end it with status 143 instead of a clean stop. Commands that do not
  // wait for one get the default action back before they run.
  auto stop = comb::stop_signal_set();
  pthread_sigmask(SIG_BLOCK, &stop, nullptr);
  main_thread = pthread_self();
  struct sigaction forward {};
  forward.sa_handler = forward_stop_signal;
  forward.sa_flags = SA_RESTART;
  sigfillset(&forward.sa_mask);
  sigaction(SIGINT, &forward, nullptr);
  sigaction(SIGTERM, &forward, nullptr);
  report_fatal_signals();
  CLI::App app{"comb: an actor-based runtime with transactional state, provenance and ML", "comb"};
  comb::apps::register_runners();
  app.require_subcommand(1);
  app.set_help_all_flag("--help-all", "Show help for every subcommand");
  comb::cli::add_node_commands(app);
  comb::cli::add_log_commands(app);
  comb::cli::add_compute_commands(app);
  comb::cli::add_model_commands(app);
  comb::cli::add_anomaly_commands(app);
  comb::cli::add_imaging_commands(app);
  comb::cli::add_console_commands(app);
  comb::cli::add_cluster_commands(app);
  comb::cli::add_cluster_verify_command(app);
#ifdef COMB_HAVE_NECTAR_SERVER
  comb::cli::add_nectar_commands(app);
#endif
#ifdef COMB_HAVE_NECTAR_TRAFFIC
  comb::cli::add_nectar_traffic_commands(app);
#endif
  // Runs once the command line is parsed, before the chosen command's callback.
  app.parse_complete_callback([&app, stop] {
    if (waits_for_stop_signal(app))
      return;
    std::signal(SIGINT, SIG_DFL);
    std::signal(SIGTERM, SIG_DFL);
    pthread_sigmask(SIG_UNBLOCK, &stop, nullptr);
  });
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  } catch (const std::exception& e) {
    // Anything else a command throws ends it with its text, not with std::terminate.
    std::cerr << "comb: " << e.what() << "\n";
    return 1;
  }
  return 0;
}

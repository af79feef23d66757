// comb::nectar pages: the HTML of Nectar's pages, built from the results of its procedures.
// Every text a user wrote goes through html_escape (element text and quoted attribute values
// alike), and pages carry no script (the server's CSP forbids it). Pure functions;
// thread-safe.
#pragma once

#include <nlohmann/json.hpp>

#include <string>
#include <string_view>

#include "base/html.hpp"

namespace comb::nectar {

/// `s` with & < > " ' written as character references (base/html.hpp).
using comb::html_escape;

/// What every page needs: who is logged in (null: nobody) and the form token.
struct page_context {
  nlohmann::json me = nullptr;
  std::string csrf;
};

std::string welcome_page(const page_context& c);
std::string register_page(const page_context& c, std::string_view error = {},
                          std::string_view username = {});
std::string login_page(const page_context& c, std::string_view error = {},
                       std::string_view username = {});
/// `feed`: nectar.feed's result.
std::string feed_page(const page_context& c, const nlohmann::json& feed);
/// `profile`: nectar.profile's result.
std::string profile_page(const page_context& c, const nlohmann::json& profile);
/// `found`: nectar.search's result.
std::string search_page(const page_context& c, const nlohmann::json& found);
/// A page saying what went wrong (`status` and a message naming the problem).
std::string error_page(const page_context& c, int status, std::string_view message);

/// The stylesheet served at /static/nectar.css.
std::string_view stylesheet();

} // namespace comb::nectar

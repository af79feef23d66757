// Nectar's HTML (see pages.hpp).
#include "apps/nectar/pages.hpp"

#include <ctime>

namespace comb::nectar {

using nlohmann::json;

namespace {

std::string str(const json& j, const char* key) {
  if (!j.is_object())
    return {};
  auto i = j.find(key);
  return i != j.end() && i->is_string() ? i->get<std::string>() : std::string{};
}

std::string csrf_field(const page_context& c) {
  return "<input type=\"hidden\" name=\"csrf\" value=\"" + html_escape(c.csrf) + "\">";
}

std::string user_link(const json& u) {
  auto name = str(u, "username");
  auto shown = str(u, "display_name");
  return "<a class=\"user\" href=\"/u/" + html_escape(name) + "\">"
         + html_escape(shown.empty() ? name : shown) + "</a> <span class=\"handle\">@"
         + html_escape(name) + "</span>";
}

std::string layout(const page_context& c, std::string_view title, std::string_view body) {
  std::string h = "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
                  "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
                  "<title>";
  h += html_escape(title);
  h += " - Nectar</title><link rel=\"stylesheet\" href=\"/static/nectar.css\"></head><body>"
       "<header><a class=\"brand\" href=\"/\">Nectar</a>"
       "<form class=\"search\" method=\"get\" action=\"/search\">"
       "<input type=\"search\" name=\"q\" placeholder=\"Search users and posts\" "
       "maxlength=\"200\"><button>Search</button></form><nav>";
  if (c.me.is_object()) {
    h += "<a href=\"/feed\">Feed</a> " + user_link(c.me)
         + " <form class=\"inline\" method=\"post\" action=\"/logout\">" + csrf_field(c)
         + "<button>Log out</button></form>";
  } else {
    h += "<a href=\"/login\">Log in</a> <a href=\"/register\">Register</a>";
  }
  h += "</nav></header><main>";
  h += body;
  h += "</main></body></html>\n";
  return h;
}

std::string when(const json& post) {
  auto ns = post.is_object() ? post.value("ts_ns", int64_t{0}) : 0;
  auto secs = static_cast<time_t>(ns / 1'000'000'000);
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char buf[32];
  std::strftime(buf, sizeof(buf), "%Y-%m-%d %H:%M UTC", &tm);
  return buf;
}

std::string posts_list(const json& posts) {
  if (!posts.is_array() || posts.empty())
    return "<p class=\"empty\">No posts yet.</p>";
  std::string h = "<ol class=\"posts\">";
  for (auto& p : posts) {
    h += "<li class=\"post\"><div class=\"meta\">" + user_link(p) + " <time>" + when(p)
         + "</time></div><p class=\"text\">" + html_escape(str(p, "text")) + "</p></li>";
  }
  return h + "</ol>";
}

std::string error_box(std::string_view error) {
  return error.empty() ? std::string{}
                       : "<p class=\"error\" role=\"alert\">" + html_escape(error) + "</p>";
}

} // namespace

std::string welcome_page(const page_context& c) {
  return layout(c, "Welcome",
                "<h1>Welcome to Nectar</h1><p>A small social network: post short notes, follow "
                "people, read your feed.</p><p><a href=\"/register\">Register</a> or "
                "<a href=\"/login\">log in</a>.</p>");
}

std::string register_page(const page_context& c, std::string_view error,
                          std::string_view username) {
  return layout(
    c, "Register",
    "<h1>Register</h1>" + error_box(error) + "<form method=\"post\" action=\"/register\">"
      + csrf_field(c)
      + "<label>Username <input name=\"username\" required minlength=\"3\" maxlength=\"32\" "
        "pattern=\"[A-Za-z0-9_.\\-]+\" value=\""
      + html_escape(username)
      + "\"></label><label>Display name <input name=\"display_name\" maxlength=\"64\"></label>"
        "<label>Password <input type=\"password\" name=\"password\" required minlength=\"8\" "
        "maxlength=\"128\"></label><button>Register</button></form>");
}

std::string login_page(const page_context& c, std::string_view error, std::string_view username) {
  return layout(c, "Log in",
                "<h1>Log in</h1>" + error_box(error) + "<form method=\"post\" action=\"/login\">"
                  + csrf_field(c) + "<label>Username <input name=\"username\" required value=\""
                  + html_escape(username)
                  + "\"></label><label>Password <input type=\"password\" name=\"password\" "
                    "required></label><button>Log in</button></form>");
}

std::string feed_page(const page_context& c, const json& feed) {
  std::string body = "<h1>Your feed</h1><form class=\"compose\" method=\"post\" action=\"/post\">"
                     + csrf_field(c)
                     + "<textarea name=\"text\" required maxlength=\"2000\" placeholder=\"What's "
                       "new?\"></textarea><button>Post</button></form>";
  body += posts_list(feed.value("posts", json::array()));
  body += "<aside><h2>Following</h2><ul>";
  for (auto& u : feed.value("following", json::array()))
    body += "<li>" + user_link(u) + "</li>";
  body += "</ul></aside>";
  return layout(c, "Feed", body);
}

std::string profile_page(const page_context& c, const json& profile) {
  auto user = profile.value("user", json::object());
  auto name = str(user, "username");
  std::string body = "<h1>" + user_link(user) + "</h1><p>Follows "
                     + std::to_string(profile.value("following", 0)) + " people.</p>";
  if (c.me.is_object() && str(c.me, "username") != name) {
    bool followed = profile.value("followed_by_me", false);
    body += std::string{"<form method=\"post\" action=\""} + (followed ? "/unfollow" : "/follow")
            + "\">" + csrf_field(c) + "<input type=\"hidden\" name=\"username\" value=\""
            + html_escape(name) + "\"><button>" + (followed ? "Unfollow" : "Follow")
            + "</button></form>";
  }
  body += posts_list(profile.value("posts", json::array()));
  return layout(c, "@" + name, body);
}

std::string search_page(const page_context& c, const json& found) {
  auto q = str(found, "q");
  std::string body = "<h1>Search</h1><p>Results for <q>" + html_escape(q)
                     + "</q></p><h2>Users</h2>";
  auto users = found.value("users", json::array());
  if (users.empty())
    body += "<p class=\"empty\">No users.</p>";
  else {
    body += "<ul>";
    for (auto& u : users)
      body += "<li>" + user_link(u) + "</li>";
    body += "</ul>";
  }
  body += "<h2>Posts</h2>" + posts_list(found.value("posts", json::array()));
  return layout(c, "Search", body);
}

std::string error_page(const page_context& c, int status, std::string_view message) {
  return layout(c, "Error " + std::to_string(status),
                "<h1>Error " + std::to_string(status) + "</h1>" + error_box(message)
                  + "<p><a href=\"/\">Back to Nectar</a></p>");
}

std::string_view stylesheet() {
  return R"(body{font-family:system-ui,sans-serif;margin:0;background:#fffaf0;color:#222}
header{display:flex;gap:1em;align-items:center;padding:.6em 1em;background:#f6b93b}
.brand{font-weight:bold;font-size:1.3em;color:#222;text-decoration:none}
nav{margin-left:auto}nav a{margin-right:.6em}
main{max-width:42em;margin:1em auto;padding:0 1em}
form label{display:block;margin:.5em 0}form.inline{display:inline}
textarea{width:100%;min-height:4em}
.posts{list-style:none;padding:0}.post{border-bottom:1px solid #eee;padding:.6em 0}
.text{white-space:pre-wrap;overflow-wrap:anywhere}.handle,.meta time{color:#777}
.error{color:#a00}.empty{color:#777}
)";
}

} // namespace comb::nectar

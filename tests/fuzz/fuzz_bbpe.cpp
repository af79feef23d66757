// libFuzzer target: BBPE encoding is lossless and yields only ids in the vocabulary for any
// bytes; the text form of a tokenizer never crashes the reader.
#include "apps/anomaly/bbpe_tokenizer.hpp"

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

using namespace comb::anomaly;

namespace {

const bbpe_tokenizer& trained() {
  static const bbpe_tokenizer tok = [] {
    std::vector<std::string> corpus = {
      "GET http://localhost:8080/tienda1/publico/anadir.jsp?id=2&nombre=Jam%F3n+Ib%E9rico "
      "HTTP/1.1 User-Agent: Mozilla/5.0 (compatible; Konqueror/3.5; Linux) Host: localhost",
      "POST http://localhost:8080/tienda1/publico/autenticar.jsp HTTP/1.1 Cookie: "
      "modo=registro&login=grimshaw&pwd=84m3ri156&remember=on&B1=Entrar",
      "cantidad=%27%3B+DROP+TABLE+usuarios%3B+SELECT+*+FROM+datos+WHERE+nombre+LIKE+%27%25"};
    std::vector<std::string_view> views;
    for (int rep = 0; rep < 20; ++rep)
      for (auto& c : corpus)
        views.emplace_back(c);
    return *bbpe_tokenizer::train(views, 600);
  }();
  return tok;
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view in(reinterpret_cast<const char*>(data), size);
  auto& tok = trained();
  auto ids = tok.encode(in);
  for (auto id : ids)
    if (id <= 0 || static_cast<size_t>(id) >= tok.vocab_size())
      __builtin_trap();
  auto back = tok.decode(ids);
  if (!back || *back != in)
    __builtin_trap();
  auto cut = tok.encode(in, 7);
  if (cut.size() > 7)
    __builtin_trap();
  auto parsed = bbpe_tokenizer::deserialize(in);
  if (parsed) {
    auto again = bbpe_tokenizer::deserialize(parsed->serialize());
    if (!again || again->merges() != parsed->merges())
      __builtin_trap();
    auto ids2 = parsed->encode(in.substr(0, 256));
    auto back2 = parsed->decode(ids2);
    if (!back2 || *back2 != in.substr(0, 256))
      __builtin_trap();
  }
  return 0;
}

// COMB_TRY(expr): returns the caf::error that `expr` yields, if any, from the enclosing
// function. For the models' long chains of backend calls. Header only.
#pragma once

#define COMB_TRY(expr)                                                                             \
  do {                                                                                             \
    if (auto err_ = (expr))                                                                        \
      return err_;                                                                                 \
  } while (false)

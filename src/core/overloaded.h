#pragma once
// std::visit over several lambdas: std::visit(Overloaded{[](int) {...}, [](double) {...}}, v).

namespace lgd::detail {

template <class... Ts>
struct Overloaded : Ts... {
  using Ts::operator()...;
};
template <class... Ts>
Overloaded(Ts...) -> Overloaded<Ts...>;

}  // namespace lgd::detail

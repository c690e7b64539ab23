// The README's integration sample as a program: a toy one-layer engine
// (toy_engine.hpp, shown verbatim in the README) explained with atman and
// printed as a terminal heatmap. The smallest complete use of the library.

#include <atman/report/terminal.hpp>

#include <cstdio>
#include <iostream>

#include "toy_engine.hpp"

int main() {
    const atman::explanation e = explain_toy();
    std::cout << atman::to_terminal(e, atman::terminal_options::for_stream(stdout));
    return 0;
}

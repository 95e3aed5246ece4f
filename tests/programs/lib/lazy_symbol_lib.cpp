// A library that calls a function no library defines, from a function nothing calls: a
// program linked with it loads only where symbols are bound lazily (LD_BIND_NOW makes the
// dynamic linker refuse it, with exit code 127). For tests/programs/lazy_symbol.cpp.
void multiproc_test_function_defined_nowhere();
void multiproc_test_never_called() { multiproc_test_function_defined_nowhere(); }

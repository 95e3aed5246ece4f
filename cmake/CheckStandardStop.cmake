# cmake -DCXX=<compiler> -DFLAGS=<response file> -DINCLUDE_DIR=<dir> -DSCRATCH=<dir>
#       [-DWITH_EXT=ON] [-DWITH_MPI=ON] -P CheckStandardStop.cmake
# A forgotten -std=c++20 must give the library's sentence and stop there, not the sentence
# followed by thousands of errors about the C++20 code after it (config.hpp stops the
# compilation). Compiles each public header on its own with -std=c++17 (FLAGS supplies the
# include paths; its own -std comes first and is overridden) and fails unless, for each one
# that does not compile, the first error is the sentence and the only other error is the
# stop right after it. A header that compiles under C++17 is fine: it floods nothing.
# ext/serialize/ headers are checked only WITH_EXT (cereal found), ext/start/ only WITH_MPI. The translation units are written
# in SCRATCH, one directory per compiler: the checks of two compilers may run at once.
cmake_minimum_required(VERSION 3.21)
set(sentence "multiproc: C++20 or later is required (use -std=c++20)")
file(GLOB_RECURSE headers RELATIVE ${INCLUDE_DIR} ${INCLUDE_DIR}/multiproc/*.hpp)
list(SORT headers)
set(bad)
set(stopped 0)
file(REMOVE_RECURSE ${SCRATCH})
file(MAKE_DIRECTORY ${SCRATCH})
foreach(h IN LISTS headers)
  if(h MATCHES "/detail/" OR (h MATCHES "/ext/serialize/" AND NOT WITH_EXT) OR (h MATCHES "/ext/start/" AND NOT WITH_MPI))
    continue()
  endif()
  string(MAKE_C_IDENTIFIER ${h} id)
  set(tu ${SCRATCH}/cxx17_${id}.cpp)
  file(WRITE ${tu} "#include <${h}>\nint main() {}\n")
  execute_process(COMMAND ${CXX} @${FLAGS} -std=c++17 ${tu}
                  RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE out)
  file(REMOVE ${tu})
  if(rc EQUAL 0)
    continue()
  endif()
  math(EXPR stopped "${stopped} + 1")
  # The diagnostics, one per line ("file:line:col: error: ..." from GCC and Clang alike);
  # a ';' in one would split the list.
  string(REPLACE ";" "," listable "${out}")
  string(REGEX MATCHALL "[^\n]*error: [^\n]*" errors "${listable}")
  list(LENGTH errors n)
  set(at -1)
  if(n GREATER 0)
    list(GET errors 0 first)
    string(FIND "${first}" "${sentence}" at)
  endif()
  string(REGEX MATCHALL "\n" lines "${out}")
  list(LENGTH lines nlines)
  if(at EQUAL -1 OR n GREATER 2)
    string(SUBSTRING "${listable}" 0 3000 head)
    list(APPEND bad "${h}: ${n} errors in ${nlines} lines, the first not the sentence:\n${head}")
  else()
    message(STATUS "${h}: stops at the sentence (${nlines} lines of output)")
  endif()
endforeach()
if(bad)
  list(JOIN bad "\n\n" msg)
  message(FATAL_ERROR "With -std=c++17 these headers do not stop at '${sentence}':\n\n${msg}")
endif()
if(stopped EQUAL 0)
  message(FATAL_ERROR "No public header failed to compile with -std=c++17: is the check still compiling them?")
endif()
message(STATUS "${stopped} public headers stop at the sentence under -std=c++17")

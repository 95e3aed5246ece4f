# cmake -DCXX=<compiler> -DFLAGS=<response file> -DINCLUDE_DIR=<dir> -DSCRATCH=<dir>
#       [-DOPTIONS=<option>|<option>...] [-DEXTRA_INCLUDES=<dir>|<dir>...]
#       [-DWITH_EXT=ON] [-DWITH_MPI=ON] [-DWITH_CONNECTION=ON] -P CheckHeadersCompile.cmake
# Every public header compiles on its own, twice included, with -Wall -Wextra -Wpedantic
# -Werror and OPTIONS, under a compiler other than the build's (whose check is the
# multiproc_header_check object libraries, cmake/TestHeaders.cmake): the docs name GCC 12 and
# Clang 14, and a header one of them refuses is a header a user cannot include. FLAGS
# supplies -std=c++20 and the include paths; EXTRA_INCLUDES the MPI ones. The headers are
# those multiproc_public_headers (PublicHeaders.cmake) keeps, as the build's own check takes.
# Failures are listed together, with the compiler's first lines for each.
cmake_minimum_required(VERSION 3.21)
include(${CMAKE_CURRENT_LIST_DIR}/PublicHeaders.cmake)
string(REPLACE "|" ";" options "${OPTIONS}")
string(REPLACE "|" ";" extra "${EXTRA_INCLUDES}")
list(TRANSFORM extra PREPEND "-I")
multiproc_public_headers(headers ${INCLUDE_DIR} "${WITH_EXT}" "${WITH_MPI}" "${WITH_CONNECTION}" ${options})
set(bad)
set(checked 0)
file(REMOVE_RECURSE ${SCRATCH})
file(MAKE_DIRECTORY ${SCRATCH})
foreach(h IN LISTS headers)
  string(MAKE_C_IDENTIFIER ${h} id)
  set(tu ${SCRATCH}/${id}.cpp)
  file(WRITE ${tu} "#include <${h}>\n#include <${h}> // twice: include guards\n")
  execute_process(COMMAND ${CXX} @${FLAGS} ${extra} -Wall -Wextra -Wpedantic -Werror ${options} ${tu}
                  RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE out)
  file(REMOVE ${tu})
  math(EXPR checked "${checked} + 1")
  if(NOT rc EQUAL 0)
    string(SUBSTRING "${out}" 0 3000 head)
    list(APPEND bad "${h}:\n${head}")
  endif()
endforeach()
if(bad)
  list(JOIN bad "\n\n" msg)
  message(FATAL_ERROR "These public headers do not compile on their own with ${CXX} ${options}:\n\n${msg}")
endif()
if(checked EQUAL 0)
  message(FATAL_ERROR "No public header was compiled: is the check still finding them?")
endif()
message(STATUS "${checked} public headers compile on their own with ${CXX} ${options}")

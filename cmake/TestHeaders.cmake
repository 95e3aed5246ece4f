# multiproc_test_headers(<target> <include dir> [<compile option>...]): one translation unit
# per public header, each including only that header, compiled into an object library with
# the options given: every header must compile on its own. Which headers: those
# multiproc_public_headers (PublicHeaders.cmake) keeps for this build and these options.
include(${CMAKE_CURRENT_LIST_DIR}/PublicHeaders.cmake)

function(multiproc_test_headers target include_dir)
  set(options ${ARGN})
  multiproc_public_headers(headers ${include_dir} "${MULTIPROC_HAVE_CEREAL}" "${MULTIPROC_WITH_MPI}"
                           "${MULTIPROC_WITH_CONNECTION}" ${options})
  set(sources)
  foreach(h IN LISTS headers)
    string(MAKE_C_IDENTIFIER ${h} id)
    set(tu ${CMAKE_CURRENT_BINARY_DIR}/${target}/${id}.cpp)
    file(CONFIGURE OUTPUT ${tu} CONTENT "#include <${h}>\n#include <${h}> // twice: include guards\n")
    list(APPEND sources ${tu})
  endforeach()
  add_library(${target} OBJECT ${sources})
  target_link_libraries(${target} PRIVATE multiproc::multiproc)
  if(MULTIPROC_HAVE_CEREAL)
    target_link_libraries(${target} PRIVATE cereal::cereal)
  endif()
  if(MULTIPROC_WITH_MPI)
    target_link_libraries(${target} PRIVATE multiproc::mpi)
  endif()
  if(MULTIPROC_WITH_CONNECTION)
    target_link_libraries(${target} PRIVATE multiproc::connection)
  endif()
  target_compile_options(${target} PRIVATE -Wall -Wextra -Wpedantic -Werror ${options})
endfunction()

# multiproc_public_headers(<out var> <include dir> <with cereal> <with MPI> <with connection>
#                          [<compile option>...]): the public headers (relative to <include dir>,
# sorted; detail/ is internal and left out) that a translation unit compiled with those options
# can include on its own. Left out: ext/serialize/cereal.hpp without cereal or given
# -fno-exceptions (cereal throws), ext/start/mpi.hpp without MPI, connection.hpp and
# manager.hpp without OpenSSL (the connection component), manager.hpp given -fno-exceptions
# (its server outlives its clients' failures by catching them), shared_heap.hpp given
# -fno-exceptions or -fno-rtti (Boost.Interprocess needs both); each of them says so in an
# #error. Shared by the header checks of the build (TestHeaders.cmake) and of other compilers
# (CheckHeadersCompile.cmake), so that both skip the same headers.
function(multiproc_public_headers out include_dir with_ext with_mpi with_connection)
  set(options ${ARGN})
  if(CMAKE_SCRIPT_MODE_FILE)
    file(GLOB_RECURSE all RELATIVE ${include_dir} ${include_dir}/multiproc/*.hpp)
  else()
    file(GLOB_RECURSE all RELATIVE ${include_dir} CONFIGURE_DEPENDS ${include_dir}/multiproc/*.hpp)
  endif()
  list(SORT all)
  set(no_exceptions FALSE)
  set(no_rtti FALSE)
  if("-fno-exceptions" IN_LIST options)
    set(no_exceptions TRUE)
  endif()
  if("-fno-rtti" IN_LIST options)
    set(no_rtti TRUE)
  endif()
  set(kept)
  foreach(h IN LISTS all)
    if(h MATCHES "/detail/"
       OR (h MATCHES "/ext/serialize/cereal" AND (NOT with_ext OR no_exceptions))
       OR (h MATCHES "/ext/start/mpi" AND NOT with_mpi)
       OR (h MATCHES "/(connection|manager).hpp$" AND NOT with_connection)
       OR (h MATCHES "/manager.hpp$" AND no_exceptions)
       OR (h MATCHES "/shared_heap.hpp$" AND (no_exceptions OR no_rtti)))
      continue()
    endif()
    list(APPEND kept ${h})
  endforeach()
  set(${out} ${kept} PARENT_SCOPE)
endfunction()

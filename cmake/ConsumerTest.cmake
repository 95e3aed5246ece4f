# cmake -DMODE=<mode> ... -P ConsumerTest.cmake: one step of a consumer test (tests/consumers/).
#   MODE=install     BUILD_DIR PREFIX: a fresh `cmake --install BUILD_DIR --prefix PREFIX`.
#   MODE=cmake       SOURCE SCRATCH CXX GENERATOR EXE [SETTING=<name>=<value>] [FOUND_UNDER=<dir>]:
#                    configures the project SOURCE in a fresh SCRATCH with the compiler CXX,
#                    builds it and runs SCRATCH/EXE. With FOUND_UNDER, multiproc_DIR must lie
#                    under that directory (the package found is the one just installed).
#   MODE=pkg-config  SOURCE SCRATCH CXX PC_DIR: compiles the file SOURCE with -std=c++20 and the
#                    flags `pkg-config --cflags --libs multiproc` gives with PKG_CONFIG_PATH=PC_DIR,
#                    and runs it.
cmake_minimum_required(VERSION 3.21)

# run(<what> <command>...): runs the command; on failure stops with its output.
function(run what)
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE out)
  if(NOT rc EQUAL 0)
    list(JOIN ARGN " " cmd)
    message(FATAL_ERROR "${what} failed (${rc}):\n  ${cmd}\n${out}")
  endif()
  message(STATUS "${what}: ok")
  set(run_output "${out}" PARENT_SCOPE)
endfunction()

if(MODE STREQUAL "install")
  file(REMOVE_RECURSE ${PREFIX})
  run("install" ${CMAKE_COMMAND} --install ${BUILD_DIR} --prefix ${PREFIX})
  return()
endif()

file(REMOVE_RECURSE ${SCRATCH})
file(MAKE_DIRECTORY ${SCRATCH})
if(MODE STREQUAL "cmake")
  set(extra)
  if(SETTING)
    set(extra -D${SETTING})
  endif()
  run("configure" ${CMAKE_COMMAND} -S ${SOURCE} -B ${SCRATCH} -G ${GENERATOR}
      -DCMAKE_CXX_COMPILER=${CXX} ${extra})
  if(FOUND_UNDER)
    file(STRINGS ${SCRATCH}/CMakeCache.txt found REGEX "^multiproc_DIR:")
    string(REGEX REPLACE "^[^=]*=" "" found "${found}")
    cmake_path(IS_PREFIX FOUND_UNDER "${found}" NORMALIZE under)
    if(NOT under)
      message(FATAL_ERROR "find_package found multiproc in '${found}', not under ${FOUND_UNDER}")
    endif()
  endif()
  run("build" ${CMAKE_COMMAND} --build ${SCRATCH})
elseif(MODE STREQUAL "pkg-config")
  find_program(PKG_CONFIG pkg-config REQUIRED)
  set(ENV{PKG_CONFIG_PATH} ${PC_DIR})
  run("pkg-config --modversion" ${PKG_CONFIG} --modversion multiproc)
  string(STRIP "${run_output}" version)
  run("pkg-config --cflags --libs" ${PKG_CONFIG} --cflags --libs multiproc)
  separate_arguments(flags UNIX_COMMAND "${run_output}")
  message(STATUS "flags: ${flags}")
  # -std is the user's choice, not the package's (docs/packaging.md).
  run("compile" ${CXX} -std=c++20 "-DCONSUMER_FOUND_VERSION=\"${version}\"" ${SOURCE} ${flags}
      -o ${SCRATCH}/consumer)
  set(EXE consumer)
else()
  message(FATAL_ERROR "MODE must be install, cmake or pkg-config, not '${MODE}'")
endif()
run("run ${EXE}" ${SCRATCH}/${EXE})
message(STATUS "${run_output}")

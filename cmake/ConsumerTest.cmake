# cmake -DMODE=<mode> -DSOURCE_DIR=<checkout> -DSCRATCH=<dir> ... -P ConsumerTest.cmake
#
# Runs one route of README.md's "Getting multiproc" as a user would: the code blocks are
# taken from README.md and run exactly as written there, with only the locations of the
# repository (a git repository made from SOURCE_DIR) and of the install prefix substituted.
# Each project builds tests/consumers/main.cpp as app.cpp and runs it; it exits 0 only if a
# child process ran and reported the exit code it chose. Everything happens under SCRATCH.
#
#   MODE=repository        REPO: a git repository, branch main, holding SOURCE_DIR's files
#                          (its tracked and untracked, not ignored, files as they are now).
#   MODE=install           REPO PREFIX: clones REPO and runs the install block in the clone.
#   MODE=find_package      PREFIX: the find_package snippet, configured and built by the
#                          block that names CMAKE_PREFIX_PATH; the package found must be PREFIX's.
#   MODE=pkg-config        PREFIX: the pkg-config block.
#   MODE=add_subdirectory  REPO: the add_subdirectory snippet, with the clone where it says.
#   MODE=fetchcontent      REPO: the FetchContent snippet, fetching from REPO.
#   MODE=conan             [REPO | CHECKOUT]: the Conan blocks (conan create, then a consumer
#                          with CMakeDeps), what the recipe's validate() rejects, and its
#                          release route. In CHECKOUT if given (CI), else in a clone of REPO.
#                          Conan is $ENV{MULTIPROC_CONAN}, else <SOURCE_DIR>/../shared/tools/
#                          conan/conan, else /work/shared/tools/conan/conan; with none, the
#                          route prints "conan not found" and stops (ctest: skipped).
#   MODE=vcpkg             PREFIX: what can be checked of ports/multiproc without vcpkg
#                          (cmake/VcpkgPortCheck.cmake), the usage snippet built against PREFIX.
#   MODE=docs              every code block of that README section appears verbatim in
#                          docs/packaging.md.
# CXX, if given, is the compiler the routes use (the CXX environment variable).
cmake_minimum_required(VERSION 3.21)

# run(<what> <dir> <command>...): runs the command in dir; on failure stops with its output.
function(run what dir)
  execute_process(COMMAND ${ARGN} WORKING_DIRECTORY ${dir} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE out)
  if(NOT rc EQUAL 0)
    list(JOIN ARGN " " cmd)
    message(FATAL_ERROR "${what} failed (${rc}) in ${dir}:\n  ${cmd}\n${out}")
  endif()
  message(STATUS "${what}: ok")
  set(run_output "${out}" PARENT_SCOPE)
endfunction()

# run_fails(<what> <dir> <regex> <command>...): the command must fail, saying <regex>.
function(run_fails what dir regex)
  execute_process(COMMAND ${ARGN} WORKING_DIRECTORY ${dir} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE out)
  if(rc EQUAL 0 OR NOT out MATCHES "${regex}")
    list(JOIN ARGN " " cmd)
    message(FATAL_ERROR "${what}: expected a failure saying '${regex}', got exit status ${rc}:\n  ${cmd}\n${out}")
  endif()
  message(STATUS "${what}: refused, as it should be")
endfunction()

# run_block(<what> <dir> <block>): runs a README shell block with sh -e in dir. (Not through
# run(): a block may hold ';', which would split it as a list.)
function(run_block what dir block)
  message(STATUS "${what}, in ${dir}:\n${block}")
  execute_process(COMMAND sh -e -c "${block}" WORKING_DIRECTORY ${dir}
                  RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE out)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "${what} failed (${rc}) in ${dir}:\n${block}\n${out}")
  endif()
  message(STATUS "${what}: ok")
endfunction()

# The fenced code blocks of README.md's "Getting multiproc" section (or of the section
# `blocks_section` of the file `blocks_file`, when the caller sets them), as block_count,
# block_<i>_lang and block_<i> (the text between the fences). string(FIND), not lists:
# a block may hold ';' or '['.
function(readme_blocks)
  if(NOT blocks_file)
    set(blocks_file README.md)
    set(blocks_section "## Getting multiproc")
  endif()
  file(READ ${SOURCE_DIR}/${blocks_file} text)
  string(FIND "${text}" "\n${blocks_section}\n" at)
  if(at EQUAL -1)
    message(FATAL_ERROR "${blocks_file} has no '${blocks_section}' section")
  endif()
  string(SUBSTRING "${text}" ${at} -1 text)
  string(SUBSTRING "${text}" 1 -1 text)
  string(FIND "${text}" "\n## " end)
  string(SUBSTRING "${text}" 0 ${end} text)
  set(i 0)
  while(TRUE)
    string(FIND "${text}" "\n```" at)
    if(at EQUAL -1)
      break()
    endif()
    math(EXPR at "${at} + 4")
    string(SUBSTRING "${text}" ${at} -1 text)
    string(FIND "${text}" "\n" eol)
    string(SUBSTRING "${text}" 0 ${eol} lang)
    math(EXPR eol "${eol} + 1")
    string(SUBSTRING "${text}" ${eol} -1 text)
    string(FIND "${text}" "```" close)
    if(close EQUAL -1)
      message(FATAL_ERROR "README.md: a ```${lang} block is not closed")
    endif()
    math(EXPR i "${i} + 1")
    string(SUBSTRING "${text}" 0 ${close} block_${i})
    set(block_${i} "${block_${i}}" PARENT_SCOPE)
    set(block_${i}_lang "${lang}" PARENT_SCOPE)
    math(EXPR close "${close} + 3")
    string(SUBSTRING "${text}" ${close} -1 text)
  endwhile()
  set(block_count ${i} PARENT_SCOPE)
endfunction()

# readme_block(<out> <lang> <needle>): the one block of that language holding needle.
function(readme_block out lang needle)
  if(NOT blocks_file)
    set(blocks_file README.md)
    set(blocks_section "## Getting multiproc")
  endif()
  readme_blocks()
  set(found 0)
  foreach(i RANGE ${block_count})
    if(i GREATER 0 AND block_${i}_lang STREQUAL lang)
      string(FIND "${block_${i}}" "${needle}" at)
      if(NOT at EQUAL -1)
        math(EXPR found "${found} + 1")
        set(${out} "${block_${i}}" PARENT_SCOPE)
      endif()
    endif()
  endforeach()
  if(NOT found EQUAL 1)
    message(FATAL_ERROR "${blocks_file} ${blocks_section}: ${found} ```${lang} blocks hold '${needle}', not one")
  endif()
endfunction()

# with_prefix(<var>): the block in var with the documented prefix /opt/multiproc replaced.
macro(with_prefix var)
  string(REPLACE "/opt/multiproc" "${PREFIX}" ${var} "${${var}}")
endmacro()

# consumer_project(<dir> <cmake snippet>): a project with the target `app` (app.cpp, the
# consumer program) followed by the snippet from README.md.
function(consumer_project dir snippet)
  file(REMOVE_RECURSE ${dir})
  file(MAKE_DIRECTORY ${dir})
  file(COPY_FILE ${SOURCE_DIR}/tests/consumers/main.cpp ${dir}/app.cpp)
  file(WRITE ${dir}/CMakeLists.txt
       "cmake_minimum_required(VERSION 3.21)\nproject(app LANGUAGES CXX)\nadd_executable(app app.cpp)\n"
       "# From README.md:\n${snippet}${ARGN}")
endfunction()

# configure_and_build(<dir>): what a user does without being told: cmake -S . -B build, build.
function(configure_and_build dir)
  run("configure" ${dir} ${CMAKE_COMMAND} -S . -B build)
  run("build" ${dir} ${CMAKE_COMMAND} --build build)
endfunction()

# cache_value(<out> <build dir> <name>)
function(cache_value out build name)
  file(STRINGS ${build}/CMakeCache.txt line REGEX "^${name}:")
  string(REGEX REPLACE "^[^=]*=" "" line "${line}")
  set(${out} "${line}" PARENT_SCOPE)
endfunction()

# As a dependency (add_subdirectory, FetchContent), multiproc adds its target and nothing else.
function(check_subproject build)
  foreach(option IN ITEMS MULTIPROC_BUILD_TESTS MULTIPROC_BUILD_EXAMPLES MULTIPROC_BUILD_BENCH MULTIPROC_INSTALL)
    cache_value(value ${build} ${option})
    if(value)
      message(FATAL_ERROR "multiproc as a subproject has ${option}=${value}: it must default to OFF")
    endif()
  endforeach()
endfunction()

# clone(<dir>): a fresh clone of REPO, as a user's checkout.
function(clone dir)
  file(REMOVE_RECURSE ${dir})
  get_filename_component(parent ${dir} DIRECTORY)
  file(MAKE_DIRECTORY ${parent})
  run("git clone" ${parent} git clone -q ${REPO} ${dir})
endfunction()

# The routes run what README.md says, so the environment must not help them.
unset(ENV{CMAKE_PREFIX_PATH})
unset(ENV{PKG_CONFIG_PATH})
unset(ENV{CMAKE_GENERATOR})
unset(ENV{CMAKE_BUILD_TYPE})
if(CXX)
  set(ENV{CXX} ${CXX})
endif()
file(READ ${SOURCE_DIR}/CMakeLists.txt cmakelists)
string(REGEX MATCH "project\\(multiproc VERSION ([0-9]+\\.[0-9]+\\.[0-9]+)" _ "${cmakelists}")
set(VERSION ${CMAKE_MATCH_1})

if(MODE STREQUAL "repository")
  file(REMOVE_RECURSE ${REPO})
  file(MAKE_DIRECTORY ${REPO})
  execute_process(COMMAND git -c core.quotePath=false ls-files --cached --others --exclude-standard
                  WORKING_DIRECTORY ${SOURCE_DIR} RESULT_VARIABLE rc OUTPUT_VARIABLE listed ERROR_QUIET)
  if(rc EQUAL 0)
    string(REPLACE "\n" ";" files "${listed}")
  else() # not a git checkout (an unpacked archive): everything but build trees
    file(GLOB_RECURSE files RELATIVE ${SOURCE_DIR} ${SOURCE_DIR}/*)
    list(FILTER files EXCLUDE REGEX "^(build|\\.git)/")
  endif()
  set(copied 0)
  foreach(f IN LISTS files)
    if(f AND EXISTS ${SOURCE_DIR}/${f} AND NOT IS_DIRECTORY ${SOURCE_DIR}/${f})
      get_filename_component(dir ${REPO}/${f} DIRECTORY)
      file(MAKE_DIRECTORY ${dir})
      file(COPY_FILE ${SOURCE_DIR}/${f} ${REPO}/${f})
      math(EXPR copied "${copied} + 1")
    endif()
  endforeach()
  run("git init" ${REPO} git init -q -b main)
  run("git add" ${REPO} git add -A)
  run("git commit" ${REPO} git -c user.name=multiproc-tests -c user.email=tests@multiproc.invalid
      -c commit.gpgsign=false commit -q -m "multiproc as it is in ${SOURCE_DIR}")
  message(STATUS "${REPO}: ${copied} files of ${SOURCE_DIR}, on branch main")

elseif(MODE STREQUAL "install")
  readme_block(block sh "cmake --install")
  with_prefix(block)
  file(REMOVE_RECURSE ${PREFIX})
  clone(${SCRATCH}/multiproc)
  run_block("README: install" ${SCRATCH}/multiproc "${block}")
  if(NOT EXISTS ${PREFIX}/include/multiproc/version.hpp)
    message(FATAL_ERROR "the install block put no include/multiproc/version.hpp under ${PREFIX}")
  endif()

elseif(MODE STREQUAL "find_package")
  readme_block(snippet cmake "find_package(multiproc")
  readme_block(block sh "CMAKE_PREFIX_PATH=")
  with_prefix(block)
  consumer_project(${SCRATCH} "${snippet}"
                   "target_compile_definitions(app PRIVATE CONSUMER_FOUND_VERSION=\"\${multiproc_VERSION}\")\n")
  run_block("README: configure and build with find_package" ${SCRATCH} "${block}")
  cache_value(found ${SCRATCH}/build multiproc_DIR)
  cmake_path(IS_PREFIX PREFIX "${found}" NORMALIZE under)
  if(NOT under)
    message(FATAL_ERROR "find_package found multiproc in '${found}', not under ${PREFIX}")
  endif()
  run("run app" ${SCRATCH} ${SCRATCH}/build/app)
  # A required component the package lacks is named in find_package's failure (which CMake
  # wraps at 80 columns: hence the [ \n]+ between words).
  set(lacking ${SCRATCH}/lacking)
  file(REMOVE_RECURSE ${lacking})
  file(MAKE_DIRECTORY ${lacking})
  file(WRITE ${lacking}/CMakeLists.txt "cmake_minimum_required(VERSION 3.21)\nproject(lacking CXX)\n"
                                       "find_package(multiproc CONFIG REQUIRED COMPONENTS nosuch)\n")
  run_fails("find_package asking for a component multiproc does not have" ${lacking}
            "Reason given by package:.*lacks[ \n]+the[ \n]+required[ \n]+component.*nosuch.*no[ \n]+such[ \n]+component"
            ${CMAKE_COMMAND} -S . -B build -DCMAKE_PREFIX_PATH=${PREFIX})

elseif(MODE STREQUAL "pkg-config")
  readme_block(block sh "pkg-config --cflags")
  with_prefix(block)
  file(REMOVE_RECURSE ${SCRATCH})
  file(MAKE_DIRECTORY ${SCRATCH})
  file(COPY_FILE ${SOURCE_DIR}/tests/consumers/main.cpp ${SCRATCH}/app.cpp)
  run_block("README: compile with pkg-config" ${SCRATCH} "${block}")
  run("run app" ${SCRATCH} ${SCRATCH}/app)
  # The version pkg-config reports, with the PKG_CONFIG_PATH the block sets, is the project's.
  if(block MATCHES "export PKG_CONFIG_PATH=([^ \n]+)")
    set(ENV{PKG_CONFIG_PATH} ${CMAKE_MATCH_1})
  endif()
  run("pkg-config --modversion" ${SCRATCH} pkg-config --modversion multiproc)
  string(STRIP "${run_output}" reported)
  if(NOT reported STREQUAL VERSION)
    message(FATAL_ERROR "pkg-config reports multiproc ${reported}, the project is ${VERSION}")
  endif()

elseif(MODE STREQUAL "add_subdirectory")
  readme_block(snippet cmake "add_subdirectory(")
  if(NOT snippet MATCHES "add_subdirectory\\(([^ )]+)\\)")
    message(FATAL_ERROR "README's add_subdirectory names no path:\n${snippet}")
  endif()
  set(path ${CMAKE_MATCH_1})
  consumer_project(${SCRATCH} "${snippet}")
  clone(${SCRATCH}/${path})
  configure_and_build(${SCRATCH})
  check_subproject(${SCRATCH}/build)
  run("run app" ${SCRATCH} ${SCRATCH}/build/app)

elseif(MODE STREQUAL "fetchcontent")
  readme_block(snippet cmake "FetchContent_Declare")
  string(REGEX REPLACE "GIT_REPOSITORY [^ \n)]+" "GIT_REPOSITORY file://${REPO}" fetched "${snippet}")
  if(fetched STREQUAL snippet)
    message(FATAL_ERROR "README's FetchContent snippet names no GIT_REPOSITORY:\n${snippet}")
  endif()
  consumer_project(${SCRATCH} "${fetched}")
  configure_and_build(${SCRATCH})
  check_subproject(${SCRATCH}/build)
  # Fetched with git, at the commit the repository's main has.
  run("fetched commit" ${SCRATCH}/build/_deps/multiproc-src git rev-parse HEAD)
  set(fetched_commit "${run_output}")
  run("repository's main" ${REPO} git rev-parse main)
  if(NOT fetched_commit STREQUAL run_output)
    message(FATAL_ERROR "FetchContent checked out ${fetched_commit}, the repository's main is ${run_output}")
  endif()
  run("run app" ${SCRATCH} ${SCRATCH}/build/app)

elseif(MODE STREQUAL "mpi_component")
  # docs/packaging.md's MPI blocks against the installed package: the CMake component and
  # the pkg-config line, building tests/consumers/mpi.cpp (run without a launcher).
  set(blocks_file docs/packaging.md)
  set(blocks_section "### MPI (`ext::start::mpi`)")
  readme_block(snippet cmake "COMPONENTS mpi")
  consumer_project(${SCRATCH} "${snippet}")
  file(COPY_FILE ${SOURCE_DIR}/tests/consumers/mpi.cpp ${SCRATCH}/app.cpp)
  run("configure with the mpi component" ${SCRATCH} ${CMAKE_COMMAND} -S . -B build -DCMAKE_PREFIX_PATH=${PREFIX})
  run("build" ${SCRATCH} ${CMAKE_COMMAND} --build build)
  run("run app" ${SCRATCH} ${SCRATCH}/build/app)
  readme_block(block sh "mpi-c")
  set(ENV{PKG_CONFIG_PATH} ${PREFIX}/share/pkgconfig)
  run_block("docs: compile with pkg-config and MPI's module" ${SCRATCH} "${block}")
  run("run app" ${SCRATCH} ${SCRATCH}/app)

elseif(MODE STREQUAL "conan")
  include(${CMAKE_CURRENT_LIST_DIR}/ConanRoute.cmake)

elseif(MODE STREQUAL "vcpkg")
  include(${CMAKE_CURRENT_LIST_DIR}/VcpkgPortCheck.cmake)

elseif(MODE STREQUAL "docs")
  readme_blocks()
  file(READ ${SOURCE_DIR}/docs/packaging.md docs)
  set(missing)
  foreach(i RANGE ${block_count})
    if(i GREATER 0)
      string(FIND "${docs}" "```${block_${i}_lang}\n${block_${i}}```" at)
      if(at EQUAL -1)
        string(APPEND missing "\n```${block_${i}_lang}\n${block_${i}}```")
      endif()
    endif()
  endforeach()
  if(missing)
    message(FATAL_ERROR "docs/packaging.md does not show these blocks of README.md's Getting multiproc:${missing}")
  endif()
  message(STATUS "docs/packaging.md shows all ${block_count} blocks of README.md's Getting multiproc")

else()
  message(FATAL_ERROR "MODE must be repository, install, find_package, pkg-config, add_subdirectory, "
                      "fetchcontent, conan, vcpkg or docs, not '${MODE}'")
endif()

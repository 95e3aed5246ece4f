# The Conan 2 route of README.md, included by ConsumerTest.cmake (MODE=conan; its functions
# and SOURCE_DIR, SCRATCH, REPO or CHECKOUT, VERSION are set).
#
# 1. Finds conan (MULTIPROC_CONAN, ../shared/tools/conan/conan next to the checkout,
#    /work/shared/tools/conan/conan); with none, says so and stops: ctest reports a skip.
# 2. A throw-away CONAN_HOME whose default profile takes Boost and range-v3 from the system
#    ([platform_requires]), with no remote: nothing is downloaded.
# 3. README's `conan create` block in the checkout, which must be left as it was (no
#    CMakeUserPresets.json, no build folder).
# 4. README's consumer: its conanfile.txt, the find_package snippet, its conan install and
#    cmake --preset block; the package found is Conan's (CMakeDeps); the program runs.
# 4b. Where pkg-config finds an MPI, the with_mpi consumer of docs/packaging.md: built
#    against multiproc::mpi and run; without an MPI module, its conan install is refused.
# 5. validate(): a too old GCC or Clang, C++17, another OS are refused with a reason.
# 6. The release route: the recipe alone (as in a recipe index) with conandata.yml naming an
#    archive of the checkout and its sha256 packages the archive; a wrong sha256 and a
#    version not listed are refused.

set(conan "$ENV{MULTIPROC_CONAN}")
if(conan)
  if(NOT EXISTS "${conan}")
    message(STATUS "conan not found: MULTIPROC_CONAN is ${conan}, which does not exist: the Conan route is skipped")
    return()
  endif()
else()
  cmake_path(SET beside NORMALIZE ${SOURCE_DIR}/../shared/tools/conan/conan)
  foreach(candidate IN ITEMS ${beside} /work/shared/tools/conan/conan)
    if(EXISTS ${candidate})
      set(conan ${candidate})
      break()
    endif()
  endforeach()
  if(NOT conan)
    message(STATUS "conan not found (no MULTIPROC_CONAN, no ${beside}, no /work/shared/tools/conan/conan): "
                   "the Conan route is skipped")
    return()
  endif()
endif()
message(STATUS "conan: ${conan}")

file(REMOVE_RECURSE ${SCRATCH})
file(MAKE_DIRECTORY ${SCRATCH}/bin)
# README says `conan`: put this one first on PATH under that name (a script, not a link: the
# tool finds its sources next to itself).
file(WRITE ${SCRATCH}/bin/conan "#!/bin/sh\nexec '${conan}' \"$@\"\n")
file(CHMOD ${SCRATCH}/bin/conan PERMISSIONS OWNER_READ OWNER_WRITE OWNER_EXECUTE GROUP_READ GROUP_EXECUTE
     WORLD_READ WORLD_EXECUTE)
set(ENV{PATH} "${SCRATCH}/bin:$ENV{PATH}")
set(ENV{CONAN_HOME} ${SCRATCH}/conan-home)
run("conan profile detect" ${SCRATCH} conan profile detect)
file(APPEND ${SCRATCH}/conan-home/profiles/default
     "\n# Boost and range-v3 are the system's (Debian: libboost1.81-dev, librange-v3-dev)\n"
     "[platform_requires]\nboost/1.81.0\nrange-v3/0.12.0\n")
run("conan remote disable conancenter" ${SCRATCH} conan remote disable conancenter)

# 3. conan create, in the checkout.
if(CHECKOUT)
  set(checkout ${CHECKOUT})
else()
  clone(${SCRATCH}/multiproc)
  set(checkout ${SCRATCH}/multiproc)
endif()
run("git status before" ${checkout} git status --porcelain --ignored)
set(status_before "${run_output}")
readme_block(create sh "conan create")
run_block("README: conan create" ${checkout} "${create}")
run("git status after" ${checkout} git status --porcelain --ignored)
if(NOT run_output STREQUAL status_before)
  message(FATAL_ERROR "conan create left files in the checkout ${checkout}:\n"
                      "before:\n${status_before}\nafter:\n${run_output}")
endif()

# 4. The consumer, with CMakeDeps.
set(consumer ${SCRATCH}/consumer)
readme_block(snippet cmake "find_package(multiproc")
readme_block(conanfile ini "[requires]")
readme_block(install sh "conan install")
consumer_project(${consumer} "${snippet}")
file(WRITE ${consumer}/conanfile.txt "${conanfile}")
run_block("README: conan install and build" ${consumer} "${install}")
file(GLOB_RECURSE caches ${consumer}/build/*/CMakeCache.txt ${consumer}/build/CMakeCache.txt)
list(LENGTH caches n)
if(NOT n EQUAL 1)
  message(FATAL_ERROR "expected one CMake build tree under ${consumer}/build, found: ${caches}")
endif()
get_filename_component(build ${caches} DIRECTORY)
cache_value(found ${build} multiproc_DIR)
cmake_path(IS_PREFIX build "${found}" NORMALIZE under)
if(NOT under)
  message(FATAL_ERROR "find_package found multiproc in '${found}', not in Conan's generators under ${build}")
endif()
run("run app" ${consumer} ${build}/app)

# 4b. The with_mpi consumer of docs/packaging.md ("MPI"), where pkg-config finds an MPI:
# tests/consumers/mpi.cpp against multiproc::mpi, through CMakeDeps; and the sentence that
# the same conan install says when pkg-config finds none.
execute_process(COMMAND pkg-config --exists ompi-c RESULT_VARIABLE no_ompi)
execute_process(COMMAND pkg-config --exists mpi-c RESULT_VARIABLE no_mpi)
if(no_ompi AND no_mpi)
  message(STATUS "pkg-config finds no MPI (ompi-c, mpi-c): the with_mpi consumer is skipped")
else()
  set(blocks_file docs/packaging.md)
  set(blocks_section "### MPI (`ext::start::mpi`)")
  readme_block(mpi_snippet cmake "COMPONENTS mpi")
  readme_block(mpi_conanfile ini "with_mpi=True")
  unset(blocks_file)
  unset(blocks_section)
  set(mpi_consumer ${SCRATCH}/mpi-consumer)
  consumer_project(${mpi_consumer} "${mpi_snippet}")
  file(COPY_FILE ${SOURCE_DIR}/tests/consumers/mpi.cpp ${mpi_consumer}/app.cpp)
  file(WRITE ${mpi_consumer}/conanfile.txt "${mpi_conanfile}")
  run_block("docs: conan install and build with with_mpi" ${mpi_consumer} "${install}")
  file(GLOB_RECURSE caches ${mpi_consumer}/build/*/CMakeCache.txt ${mpi_consumer}/build/CMakeCache.txt)
  get_filename_component(mpi_build ${caches} DIRECTORY)
  run("run the with_mpi app" ${mpi_consumer} ${mpi_build}/app)
  if(NOT run_output MATCHES "multiproc::mpi built, and the pool asks for a launcher")
    message(FATAL_ERROR "the with_mpi consumer did not say it was built against MPI:\n${run_output}")
  endif()
  file(MAKE_DIRECTORY ${SCRATCH}/no-pkgconfig)
  set(saved_path "$ENV{PKG_CONFIG_PATH}")
  set(saved_libdir "$ENV{PKG_CONFIG_LIBDIR}")
  set(ENV{PKG_CONFIG_PATH} "")
  set(ENV{PKG_CONFIG_LIBDIR} ${SCRATCH}/no-pkgconfig)
  run_fails("conan install with with_mpi where pkg-config finds no MPI" ${mpi_consumer}
            "with_mpi needs an MPI whose pkg-config module \\(ompi-c or mpi-c\\) pkg-config can find"
            conan install . --build=missing -s compiler.cppstd=20 --output-folder=${SCRATCH}/no-mpi)
  set(ENV{PKG_CONFIG_PATH} "${saved_path}")
  set(ENV{PKG_CONFIG_LIBDIR} "${saved_libdir}")
endif()

# 5. What validate() refuses (conan install of the package under those settings).
foreach(refusal IN ITEMS "compiler.version=11|gcc 11 is too old: it needs gcc 12 or later"
                         "compiler=clang compiler.version=13 compiler.libcxx=libstdc++11|clang 13 is too old"
                         "compiler.cppstd=17|cppstd \\(17\\) is lower than the required C\\+\\+ standard \\(20\\)"
                         "os=Windows|Windows is not supported")
  string(REPLACE "|" ";" refusal "${refusal}")
  list(GET refusal 0 settings)
  list(GET refusal 1 reason)
  separate_arguments(settings)
  list(TRANSFORM settings PREPEND "-s")
  run_fails("conan install with ${settings}" ${SCRATCH} "Invalid: .*${reason}"
            conan install --requires=multiproc/${VERSION} -s compiler.cppstd=20 ${settings})
endforeach()

# 6. The release route: an archive of the checkout as the release, the recipe on its own.
set(archive ${SCRATCH}/multiproc-${VERSION}.tar.gz)
run("git archive" ${checkout} git archive --format=tar.gz --prefix=multiproc-${VERSION}/ -o ${archive} HEAD)
file(SHA256 ${archive} sha256)
set(recipe ${SCRATCH}/recipe)
file(COPY ${checkout}/conan/ DESTINATION ${recipe})
function(release_conandata sha)
  file(WRITE ${recipe}/conandata.yml
       "sources:\n  \"${VERSION}\":\n    url: \"file://${archive}\"\n    sha256: \"${sha}\"\n")
endfunction()
release_conandata(${sha256})
run("conan create of the release" ${SCRATCH} conan create ${recipe} --version=${VERSION} --build=missing
    -s compiler.cppstd=20)
if(NOT run_output MATCHES "sources of release ${VERSION} from file://"
   OR NOT run_output MATCHES "Packaged [0-9]+ '.hpp' files")
  message(FATAL_ERROR "the release was not packaged from its archive:\n${run_output}")
endif()
string(REGEX REPLACE "^(.)" "0" wrong "${sha256}")
if(wrong STREQUAL sha256)
  string(REGEX REPLACE "^(.)" "1" wrong "${sha256}")
endif()
release_conandata(${wrong})
run_fails("conan create of the release with a wrong sha256" ${SCRATCH} "sha256 signature failed"
          conan create ${recipe} --version=${VERSION} --build=missing -s compiler.cppstd=20 --test-folder=)
run_fails("conan create of a version that is no release, the recipe outside a checkout" ${SCRATCH}
          "0\\.0\\.1 is not a release listed in conandata.yml"
          conan create ${recipe} --version=0.0.1 --build=missing -s compiler.cppstd=20 --test-folder=)

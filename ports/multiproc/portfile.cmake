# multiproc is header-only: one configuration, nothing compiled.
set(VCPKG_BUILD_TYPE release)

# Where the sources come from:
# - an overlay from a checkout, `vcpkg install multiproc --overlay-ports=<checkout>/ports`:
#   the checkout around this port, as it is (development);
# - this port on its own, as in a registry: the release tag v${VERSION}, fetched by git at the
#   commit listed below (a commit id names its content; a tag could be moved).
if(EXISTS "${CMAKE_CURRENT_LIST_DIR}/../../include/multiproc/version.hpp")
    cmake_path(SET SOURCE_PATH NORMALIZE "${CMAKE_CURRENT_LIST_DIR}/../..")
else()
    # Releases: version, then the commit its tag names. None yet: 0.1.0 is unreleased.
    set(releases)
    list(FIND releases "${VERSION}" at)
    if(at EQUAL -1)
        message(FATAL_ERROR "multiproc: ${VERSION} is not a release this port lists; "
                            "install it from a checkout with --overlay-ports=<checkout>/ports")
    endif()
    math(EXPR at "${at} + 1")
    list(GET releases ${at} commit)
    vcpkg_from_git(
        OUT_SOURCE_PATH SOURCE_PATH
        URL https://example.invalid/multiproc.git
        REF "${commit}"
        FETCH_REF "v${VERSION}"
        HEAD_REF main
    )
endif()

# The feature mpi installs multiproc::mpi (component mpi); without it the package has none,
# even where an MPI library happens to be found.
vcpkg_check_features(OUT_FEATURE_OPTIONS feature_options
    FEATURES
        mpi MULTIPROC_WITH_MPI
)

vcpkg_cmake_configure(
    SOURCE_PATH "${SOURCE_PATH}"
    OPTIONS
        ${feature_options}
        -DMULTIPROC_INSTALL=ON
        -DMULTIPROC_BUILD_TESTS=OFF
        -DMULTIPROC_BUILD_EXAMPLES=OFF
        -DMULTIPROC_BUILD_BENCH=OFF
)
vcpkg_cmake_install()
# The CMake package goes from lib/cmake/multiproc to share/multiproc, as vcpkg expects.
vcpkg_cmake_config_fixup(CONFIG_PATH lib/cmake/multiproc)
vcpkg_fixup_pkgconfig()
file(REMOVE_RECURSE "${CURRENT_PACKAGES_DIR}/lib")

file(INSTALL "${CMAKE_CURRENT_LIST_DIR}/usage" DESTINATION "${CURRENT_PACKAGES_DIR}/share/${PORT}")
vcpkg_install_copyright(FILE_LIST "${SOURCE_PATH}/LICENSE")

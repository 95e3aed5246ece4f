# multiproc is header-only: one configuration, nothing compiled.
set(VCPKG_BUILD_TYPE release)

# An overlay port of the checkout it lives in (ports/multiproc/../..), so that
#   vcpkg install multiproc --overlay-ports=<checkout>/ports
# installs the tree you have. A registry port would fetch a release instead:
#   vcpkg_from_git(OUT_SOURCE_PATH SOURCE_PATH URL <repository> REF <commit of v${VERSION}>)
cmake_path(SET SOURCE_PATH NORMALIZE "${CMAKE_CURRENT_LIST_DIR}/../..")

vcpkg_cmake_configure(
    SOURCE_PATH "${SOURCE_PATH}"
    OPTIONS
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

# multiproc_pkgconfig(<output .pc> <install dir>): writes multiproc.pc from multiproc.pc.in at
# configure time, for a .pc that will be installed in <install dir> (relative to the prefix,
# or absolute). The file is relocatable: prefix is ${pcfiledir}/<back to prefix>, so
# `cmake --install --prefix`, DESTDIR and package managers that move it all keep it right.
#
# Boost and range-v3 ship no .pc file (Debian's libboost1.81-dev and librange-v3-dev have
# none), so the .pc names no Requires; the include directories CMake found them in go into
# Cflags instead, unless the compiler searches them anyway (/usr/include).
function(multiproc_pkgconfig output install_dir)
  if(IS_ABSOLUTE "${install_dir}")
    set(MULTIPROC_PC_PREFIX "${CMAKE_INSTALL_PREFIX}")
  else()
    file(RELATIVE_PATH back "/root/${install_dir}" "/root")
    string(REGEX REPLACE "/$" "" back "${back}")
    set(MULTIPROC_PC_PREFIX "\${pcfiledir}/${back}")
  endif()
  if(IS_ABSOLUTE "${CMAKE_INSTALL_INCLUDEDIR}")
    set(MULTIPROC_PC_INCLUDEDIR "${CMAKE_INSTALL_INCLUDEDIR}")
  else()
    set(MULTIPROC_PC_INCLUDEDIR "\${prefix}/${CMAKE_INSTALL_INCLUDEDIR}")
  endif()

  set(dirs)
  foreach(dep IN ITEMS Boost::headers range-v3::range-v3)
    get_target_property(dep_dirs ${dep} INTERFACE_INCLUDE_DIRECTORIES)
    if(dep_dirs)
      list(APPEND dirs ${dep_dirs})
    endif()
  endforeach()
  list(REMOVE_DUPLICATES dirs)
  set(MULTIPROC_PC_DEP_CFLAGS "")
  foreach(dir IN LISTS dirs)
    if(NOT dir IN_LIST CMAKE_CXX_IMPLICIT_INCLUDE_DIRECTORIES)
      string(APPEND MULTIPROC_PC_DEP_CFLAGS " -I${dir}")
    endif()
  endforeach()

  set(MULTIPROC_PC_LIBRT "")
  if(MULTIPROC_LIBRT)
    set(MULTIPROC_PC_LIBRT " -lrt")
  endif()
  configure_file(${PROJECT_SOURCE_DIR}/cmake/multiproc.pc.in ${output} @ONLY)
endfunction()

# Configure, build and run one consumer project of tests/cmake/ (cmake -P script, driven by ctest).
#
#   -DMODE=find_package|add_subdirectory
#   -DCONSUMER_DIR=<tests/cmake/MODE>      -DWORK_DIR=<scratch dir, wiped first>
#   -DEDGESPEC_SOURCE_DIR=<repo root>      -DEDGESPEC_BINARY_DIR=<edgespec build dir>   -DEDGESPEC_VERSION=x.y.z
#   -DGENERATOR=... -DMAKE_PROGRAM=... -DCXX_COMPILER=... -DBUILD_TYPE=...
#
# find_package: `cmake --install` EDGESPEC_BINARY_DIR into WORK_DIR/prefix, then build the consumer with
# CMAKE_PREFIX_PATH=WORK_DIR/prefix and check that the package came from there (not the build or source tree).
cmake_minimum_required(VERSION 3.20)

foreach(v MODE CONSUMER_DIR WORK_DIR EDGESPEC_SOURCE_DIR GENERATOR CXX_COMPILER)
  if(NOT DEFINED ${v} OR "${${v}}" STREQUAL "")
    message(FATAL_ERROR "run_consumer.cmake: -D${v}=... is required")
  endif()
endforeach()
if(NOT BUILD_TYPE)
  set(BUILD_TYPE Release)
endif()

function(run step)
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE out)
  if(NOT rc EQUAL 0)
    string(REPLACE ";" " " cmd "${ARGN}")
    message(FATAL_ERROR "${MODE} consumer: ${step} failed (${rc})\n  ${cmd}\n${out}")
  endif()
  set(last_output "${out}" PARENT_SCOPE)
endfunction()

file(REMOVE_RECURSE "${WORK_DIR}")
file(MAKE_DIRECTORY "${WORK_DIR}")
set(build "${WORK_DIR}/build")
set(args -S "${CONSUMER_DIR}" -B "${build}" -G "${GENERATOR}"
         "-DCMAKE_CXX_COMPILER=${CXX_COMPILER}" "-DCMAKE_BUILD_TYPE=${BUILD_TYPE}"
         -DCMAKE_FIND_PACKAGE_NO_PACKAGE_REGISTRY=ON)
if(MAKE_PROGRAM)
  list(APPEND args "-DCMAKE_MAKE_PROGRAM=${MAKE_PROGRAM}")
endif()

if(MODE STREQUAL "find_package")
  if(NOT EDGESPEC_BINARY_DIR OR NOT EDGESPEC_VERSION)
    message(FATAL_ERROR "run_consumer.cmake: find_package needs -DEDGESPEC_BINARY_DIR and -DEDGESPEC_VERSION")
  endif()
  set(prefix "${WORK_DIR}/prefix")
  run("install" "${CMAKE_COMMAND}" --install "${EDGESPEC_BINARY_DIR}" --prefix "${prefix}" --config "${BUILD_TYPE}")
  list(APPEND args "-DCMAKE_PREFIX_PATH=${prefix}" "-DEDGESPEC_VERSION=${EDGESPEC_VERSION}")
elseif(MODE STREQUAL "add_subdirectory")
  list(APPEND args "-DEDGESPEC_SOURCE_DIR=${EDGESPEC_SOURCE_DIR}")
else()
  message(FATAL_ERROR "run_consumer.cmake: unknown MODE '${MODE}'")
endif()

run("configure" "${CMAKE_COMMAND}" ${args})
message("${last_output}")

if(MODE STREQUAL "find_package")
  file(STRINGS "${build}/CMakeCache.txt" dir_line REGEX "^edgespec_DIR:")
  string(REGEX REPLACE "^edgespec_DIR:[A-Z]+=" "" found_dir "${dir_line}")
  file(REAL_PATH "${prefix}" real_prefix)
  file(REAL_PATH "${found_dir}" real_found)
  string(FIND "${real_found}/" "${real_prefix}/" at)
  if(NOT at EQUAL 0)
    message(FATAL_ERROR "find_package consumer: edgespec was found in '${found_dir}', not under '${prefix}'")
  endif()
endif()

run("build" "${CMAKE_COMMAND}" --build "${build}" --config "${BUILD_TYPE}")

# Single-config generators put the program in the build dir, multi-config ones in build/<config>/.
set(exe "${build}/consumer")
if(NOT EXISTS "${exe}")
  set(exe "${build}/${BUILD_TYPE}/consumer")
endif()
run("run" "${exe}")
message("${last_output}")
if(NOT last_output MATCHES "edgespec consumer OK")
  message(FATAL_ERROR "${MODE} consumer: unexpected output:\n${last_output}")
endif()

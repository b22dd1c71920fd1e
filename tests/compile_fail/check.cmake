# Driver of one compile check (cmake -P): -DFLAGS_FILE=<compile_flags.cmake> -DCASE_FILE=<cases/NAME.cmake>.
# EXPECT FAIL: pass only if the compiler rejects SOURCE and its diagnostics match REGEX.
# EXPECT PASS: pass only if the compiler accepts SOURCE.
cmake_minimum_required(VERSION 3.20)
include("${FLAGS_FILE}")
include("${CASE_FILE}")

set(cmd "${CXX}" ${CXX_OPTIONS})
foreach(dir IN LISTS INCLUDE_DIRS)
  if(dir)
    list(APPEND cmd "-I${dir}")
  endif()
endforeach()
list(APPEND cmd "${SOURCE}")

execute_process(COMMAND ${cmd} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE out)
string(REPLACE ";" " " cmd_line "${cmd}")

if(EXPECT STREQUAL "PASS")
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "expected ${SOURCE} to compile, but it did not (${rc}):\n  ${cmd_line}\n${out}")
  endif()
  message(STATUS "compiles, as expected: ${SOURCE}")
elseif(EXPECT STREQUAL "FAIL")
  if(rc EQUAL 0)
    message(FATAL_ERROR "expected ${SOURCE} NOT to compile, but it compiled:\n  ${cmd_line}\n${out}")
  endif()
  if(NOT out MATCHES "${REGEX}")
    message(FATAL_ERROR "${SOURCE} failed to compile, but not with a diagnostic matching\n  ${REGEX}\n"
                        "  ${cmd_line}\n${out}")
  endif()
  message(STATUS "rejected, as expected, with '${CMAKE_MATCH_0}': ${SOURCE}")
else()
  message(FATAL_ERROR "check.cmake: EXPECT must be PASS or FAIL, not '${EXPECT}'")
endif()

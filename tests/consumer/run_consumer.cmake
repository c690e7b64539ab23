# Builds and runs the consumer project against atman, as a user would:
#   MODE=find_package      install atman into a prefix, then find_package(atman CONFIG REQUIRED)
#   MODE=add_subdirectory  add_subdirectory(<atman source>)
# Inputs (-D): MODE, ATMAN_SOURCE_DIR, CONSUMER_SOURCE_DIR, WORK_DIR, GENERATOR,
# CXX_COMPILER, CXX_COMPILER_LAUNCHER (may be empty).
cmake_minimum_required(VERSION 3.25)

foreach(input MODE ATMAN_SOURCE_DIR CONSUMER_SOURCE_DIR WORK_DIR GENERATOR CXX_COMPILER)
    if(NOT DEFINED ${input} OR "${${input}}" STREQUAL "")
        message(FATAL_ERROR "run_consumer.cmake: -D${input}=... is required")
    endif()
endforeach()

file(REMOVE_RECURSE ${WORK_DIR})
set(common -G ${GENERATOR} -DCMAKE_BUILD_TYPE=Release -DCMAKE_CXX_COMPILER=${CXX_COMPILER})
if(CXX_COMPILER_LAUNCHER)
    list(APPEND common -DCMAKE_CXX_COMPILER_LAUNCHER=${CXX_COMPILER_LAUNCHER})
endif()

function(run)
    message(STATUS "run: ${ARGN}")
    execute_process(COMMAND ${ARGN} COMMAND_ERROR_IS_FATAL ANY)
endfunction()

if(MODE STREQUAL "find_package")
    set(prefix ${WORK_DIR}/prefix)
    run(${CMAKE_COMMAND} -S ${ATMAN_SOURCE_DIR} -B ${WORK_DIR}/atman-build ${common}
        -DATMAN_BUILD_TESTS=OFF -DATMAN_BUILD_EXAMPLES=OFF -DATMAN_BUILD_BENCHMARKS=OFF
        -DATMAN_INSTALL=ON -DATMAN_CUDA=OFF)
    run(${CMAKE_COMMAND} --install ${WORK_DIR}/atman-build --prefix ${prefix})
    set(consumer_options -DCMAKE_PREFIX_PATH=${prefix})
elseif(MODE STREQUAL "add_subdirectory")
    set(consumer_options -DATMAN_CONSUMER_SOURCE=${ATMAN_SOURCE_DIR})
else()
    message(FATAL_ERROR "run_consumer.cmake: MODE must be find_package or add_subdirectory, got '${MODE}'")
endif()

run(${CMAKE_COMMAND} -S ${CONSUMER_SOURCE_DIR} -B ${WORK_DIR}/consumer-build ${common} ${consumer_options})
run(${CMAKE_COMMAND} --build ${WORK_DIR}/consumer-build -j2)
run(${WORK_DIR}/consumer-build/atman_consumer)

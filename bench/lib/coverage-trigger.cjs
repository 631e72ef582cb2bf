// Preloaded (`node --require`) into a process started with NODE_V8_COVERAGE=DIR by bench/scenarios/calls.mjs: on
// SIGUSR2 the process writes the V8 coverage counted since its start or the last signal to DIR and resets the counters
// (v8.takeCoverage), so a run can count exactly the calls of a known number of requests.
'use strict';
const v8 = require('node:v8');

process.on('SIGUSR2', () => v8.takeCoverage());

/**
 * V8 settings of the originlink process (serve, demo, and their cluster
 * workers), applied before any request is handled. Imported first by main.ts.
 *
 * `--no-allocation-site-pretenuring`: V8 watches how many objects from each
 * allocation site survive a scavenge and, past a threshold, allocates that
 * site's objects directly in the old generation from then on. A connector
 * under load trips it (a request's objects are alive across a scavenge while
 * it waits for the origin); the old-generation objects then keep everything
 * young they point to alive through every scavenge, so each request's
 * objects were promoted and collected only by major GCs. Whether a run
 * tripped it depended on timing: measured with `npm run bench -- gc`
 * (service-h1), 4.0–4.4 KB promoted per request and 80–126 µs of CPU per
 * request in the runs that tripped it (about 3 of 4), 0.2 KB and 56–65 µs
 * with this module in 3 of 3 (bench/RESULTS.md `gc`). Embedders of the Agent can pass the
 * same flag to node.
 */
import v8 from 'node:v8';

export const V8_FLAGS = ['--no-allocation-site-pretenuring'] as const;

for (const f of V8_FLAGS) v8.setFlagsFromString(f);

/**
 * The child process preflight.ts starts: reads {config, options} as JSON on stdin, runs
 * the checks and writes one JSON line per check as it finishes.
 */
import { text } from 'node:stream/consumers';
import { runChecks, type ChildInput } from './preflight.js';

const { config, options } = JSON.parse(await text(process.stdin)) as ChildInput;
await runChecks(config, options, (done) => process.stdout.write(JSON.stringify(done) + '\n'));

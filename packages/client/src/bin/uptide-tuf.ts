#!/usr/bin/env node
/** `uptide-tuf`: the plain TUF client (see packages/client/src/tuf/cli.ts and docs/tuf-conformance.md). */
import { main } from '../tuf/cli.js';

// Exit explicitly: the conformance suite waits for the process, so nothing may keep it alive.
process.exit(await main(process.argv.slice(2)));

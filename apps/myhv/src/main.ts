import { run } from '@my-hypervisor/cli';

process.exitCode = await run(process.argv.slice(2));

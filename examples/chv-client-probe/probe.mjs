// Boots the probe guest (a 600-byte kernel that prints its command line back) on cloud-hypervisor. Where this host
// cannot run guests, the first line says why and the same run goes to the bundled simulator, which runs no guest.
import assert from 'node:assert/strict';
import { checkVmmBinary } from '@my-hypervisor/chv-client';
import {
  realVmmBinary,
  realVmmSkipReason,
  runProbeGuest,
  simulatorCommand,
} from '@my-hypervisor/chv-client/testing';

const cmdline = `console=ttyS0 example.pid=${process.pid}`;
const whyNot = realVmmSkipReason(); // reads MYHV_CLOUD_HYPERVISOR and checks /dev/kvm
let vmm;
if (whyNot === undefined) {
  vmm = { command: realVmmBinary() };
  const { kind, version } = await checkVmmBinary(vmm.command);
  assert.equal(kind, 'cloud-hypervisor', `${vmm.command} is not a real cloud-hypervisor`);
  console.log(`real VMM: cloud-hypervisor ${version} (${vmm.command})`);
} else {
  const { command, args } = simulatorCommand();
  vmm = { command, commandArgs: args };
  console.log(`simulator, not a real VMM (no guest runs): ${whyNot}`);
}

const run = await runProbeGuest({ ...vmm, cmdline, timeoutMs: 20_000 });
assert.equal(run.cmdline, cmdline, 'the guest printed back another command line');
console.log(
  `VMM ready in ${run.readyMs.toFixed(0)} ms, guest marker ${run.bootMs.toFixed(0)} ms after vm.create`,
);
console.log(`the guest got: ${run.cmdline}`);

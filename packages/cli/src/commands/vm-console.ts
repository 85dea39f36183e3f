import type { Socket } from 'node:net';
import type { ReadStream } from 'node:tty';
import { openManager } from '../backends.js';
import { ExitCode } from '../exit-codes.js';
import type { CommandHandler } from '../run.js';
import { parseVmName } from '../vm-name.js';

/** Ctrl-]: the detach key, as in virsh and telnet. */
const DETACH = 0x1d;

/**
 * `myhv vm console NAME`: attaches this terminal to the VM's serial port until Ctrl-] (or the VM stops). One console
 * at a time: a second attach fails with BUSY. Keys, Ctrl-C included, go to the guest; serial.log keeps being written.
 */
export const vmConsole: CommandHandler = async (ctx, [rawName]) => {
  const name = parseVmName(rawName);
  const config = await ctx.config();
  const { manager } = await openManager(config, { kind: 'read' });
  const socket = await manager.console(name);
  const stdin = (ctx.io.stdin ?? process.stdin) as NodeJS.ReadableStream & Partial<ReadStream>;
  ctx.out.note(`connected to ${name}'s serial console (detach with Ctrl-])`);
  const why = await relay(socket, stdin, ctx.io.stdout);
  ctx.out.result({ vm: name, detached: true }, () =>
    ctx.out.note(
      why === 'closed' ? `\r\n${name}: the console closed (the VM stopped)` : `\r\ndetached from ${name}`,
    ),
  );
  return ExitCode.OK;
};

/** Pipes the terminal (raw when it is one) to the console until the detach key, end of input or the VM stopping. */
function relay(
  socket: Socket,
  stdin: NodeJS.ReadableStream & Partial<ReadStream>,
  stdout: NodeJS.WritableStream,
): Promise<'detached' | 'closed'> {
  const raw = stdin.isTTY === true && typeof stdin.setRawMode === 'function';
  return new Promise((resolve) => {
    let done = false;
    const finish = (why: 'detached' | 'closed') => {
      if (done) return;
      done = true;
      stdin.off('data', onInput);
      stdin.off('end', onEnd);
      process.off('SIGTERM', onTerm);
      if (raw) stdin.setRawMode!(false);
      stdin.pause();
      socket.destroy();
      resolve(why);
    };
    const onInput = (chunk: Buffer | string) => {
      const bytes = typeof chunk === 'string' ? Buffer.from(chunk) : chunk;
      const at = bytes.indexOf(DETACH);
      if (at < 0) {
        socket.write(bytes);
        return;
      }
      if (at > 0) socket.write(bytes.subarray(0, at));
      finish('detached');
    };
    const onEnd = () => finish('detached');
    const onTerm = () => finish('detached');
    socket.on('data', (chunk) => stdout.write(chunk));
    socket.on('close', () => finish('closed'));
    socket.on('error', () => undefined);
    socket.resume();
    if (raw) stdin.setRawMode!(true);
    stdin.on('data', onInput);
    stdin.on('end', onEnd);
    process.once('SIGTERM', onTerm);
    stdin.resume();
  });
}

import { randomBytes } from 'node:crypto';
import { closeSync, existsSync, openSync, readFileSync, renameSync, writeSync } from 'node:fs';
/**
 * Terminal input and output: where text goes, whether it may be coloured, prompts (plain and
 * hidden). Commands receive an `Io` so tests and pseudo-terminals drive the same code.
 */
import { createInterface } from 'node:readline';

export interface Io {
  out(text: string): void;
  err(text: string): void;
  /** Writes without a newline (progress bars). */
  write(text: string): void;
  /** stdout is a terminal. */
  readonly isTty: boolean;
  /** stdin is a terminal (a prompt can be answered). */
  readonly stdinTty: boolean;
  /** Colours allowed: stdout is a terminal and NO_COLOR is unset. */
  readonly color: boolean;
  readonly env: Readonly<Record<string, string | undefined>>;
  prompt(question: string, options?: { hidden?: boolean }): Promise<string>;
  readStdin(): Promise<string>;
  /**
   * The first line of stdin (without its end of line), waiting at most `timeoutMs`; stdin is closed
   * after it, so an endless producer (`yes |`) stops. `eof`: stdin ended with nothing on it.
   */
  readLine(timeoutMs: number): Promise<LineRead>;
}

export type LineRead = { kind: 'line'; text: string } | { kind: 'eof' } | { kind: 'timeout' };

/** A CLI failure with its exit code; the message is safe to print. */
export class CliError extends Error {
  readonly exitCode: number;
  constructor(message: string, exitCode = 1) {
    super(message);
    this.exitCode = exitCode;
  }
}

export function processIo(env: Readonly<Record<string, string | undefined>> = process.env): Io {
  const isTty = process.stdout.isTTY === true;
  const noColor = env.NO_COLOR !== undefined && env.NO_COLOR !== '';
  return {
    out: (text) => process.stdout.write(`${text}\n`),
    err: (text) => process.stderr.write(`${text}\n`),
    write: (text) => process.stdout.write(text),
    isTty,
    stdinTty: process.stdin.isTTY === true,
    color: isTty && !noColor && env.TERM !== 'dumb',
    env,
    prompt: (question, options = {}) => prompt(question, options.hidden === true),
    readStdin,
    readLine,
  };
}

function readLine(timeoutMs: number): Promise<LineRead> {
  const stdin = process.stdin;
  return new Promise((resolve) => {
    let text = '';
    const finish = (result: LineRead) => {
      clearTimeout(timer);
      stdin.off('data', onData);
      stdin.off('end', onEnd);
      stdin.off('error', onEnd);
      stdin.destroy();
      resolve(result);
    };
    const onData = (chunk: Buffer) => {
      text += chunk.toString('utf8');
      const end = text.indexOf('\n');
      if (end >= 0) finish({ kind: 'line', text: text.slice(0, end).replace(/\r$/, '') });
      else if (text.length > 4096) finish({ kind: 'line', text });
    };
    const onEnd = () => finish(text === '' ? { kind: 'eof' } : { kind: 'line', text });
    const timer = setTimeout(() => finish({ kind: 'timeout' }), timeoutMs);
    stdin.on('data', onData);
    stdin.once('end', onEnd);
    stdin.once('error', onEnd);
    stdin.resume();
  });
}

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

/** Asks on stderr; with `hidden`, typed characters are not echoed (an API key). */
function prompt(question: string, hidden: boolean): Promise<string> {
  return new Promise((resolve, reject) => {
    const rl = createInterface({ input: process.stdin, output: process.stderr, terminal: true });
    if (hidden) {
      // readline echoes through _writeToOutput; swallow everything typed after the question.
      const writable = rl as unknown as { _writeToOutput: (s: string) => void };
      let asked = false;
      writable._writeToOutput = (s: string) => {
        if (!asked) {
          process.stderr.write(s);
          asked = true;
        }
      };
    }
    rl.question(question, (answer) => {
      rl.close();
      if (hidden) process.stderr.write('\n');
      resolve(answer);
    });
    rl.on('SIGINT', () => {
      rl.close();
      reject(new CliError('interrupted', 130));
    });
  });
}

const CODES = { red: 31, green: 32, yellow: 33, cyan: 36, dim: 2, bold: 1 } as const;
export type Colour = keyof typeof CODES;

/** `paint(io)('green', text)`: ANSI colour only when the Io allows it. */
export function painter(io: Pick<Io, 'color'>): (colour: Colour, text: string) => string {
  return (colour, text) => (io.color ? `\u001b[${CODES[colour]}m${text}\u001b[0m` : text);
}

/**
 * A one-line progress bar on a terminal (redrawn in place with \r); nothing elsewhere, so logs and
 * pipes stay clean. Call `clear()` before printing a line, then `draw()` again.
 */
export function progressBar(
  io: Io,
  total: number,
): { draw(done: number, label: string): void; clear(): void } {
  const width = 24;
  const on = io.isTty && total >= 2;
  return {
    draw(done, label) {
      if (!on) return;
      const filled = Math.round((done / total) * width);
      const bar = `${'#'.repeat(filled)}${'-'.repeat(width - filled)}`;
      io.write(`\r\u001b[2K[${bar}] ${done}/${total} ${label.slice(0, 60)}`);
    },
    clear() {
      if (on) io.write('\r\u001b[2K');
    },
  };
}

/**
 * Writes a file that holds a secret, readable only by the user: a new file next to it (exclusive
 * create, mode 0600 from the start, so the secret is never readable by others for an instant), then
 * renamed over the target. A symbolic link at the target is replaced, never followed.
 */
export function writeSecretFile(path: string, content: string, append = false): void {
  const previous = append && existsSync(path) ? readFileSync(path, 'utf8') : '';
  const temp = `${path}.${randomBytes(6).toString('hex')}.tmp`;
  const fd = openSync(temp, 'wx', 0o600);
  try {
    writeSync(fd, previous + content);
  } finally {
    closeSync(fd);
  }
  renameSync(temp, path);
}

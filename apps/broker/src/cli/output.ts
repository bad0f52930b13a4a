import { userInfo } from 'node:os';

/** Terminal output helpers. Tables for people, `--json` for scripts; errors go to stderr. */
export interface Io {
  out(line: string): void;
  err(line: string): void;
  readonly isTty: boolean;
}

export const processIo: Io = {
  out: (line) => process.stdout.write(`${line}\n`),
  err: (line) => process.stderr.write(`${line}\n`),
  isTty: process.stderr.isTTY === true,
};

export function table(items: readonly object[], columns: readonly string[]): string {
  const rows = items as readonly Record<string, unknown>[];
  const text = (v: unknown) => (v === null || v === undefined ? '-' : String(v));
  const widths = columns.map((c) => Math.max(c.length, ...rows.map((r) => text(r[c]).length)));
  const line = (cells: string[]) =>
    cells
      .map((cell, i) => cell.padEnd(widths[i]!))
      .join('  ')
      .trimEnd();
  return [
    line(columns.map((c) => c.toUpperCase())),
    ...rows.map((r) => line(columns.map((c) => text(r[c])))),
  ].join('\n');
}

/** A progress bar on a terminal; a line per 10% otherwise (logs, CI). */
export function progressBar(io: Io, label: string) {
  let lastDecile = -1;
  return {
    update(done: number, total: number) {
      const ratio = total === 0 ? 1 : Math.min(1, done / total);
      if (io.isTty) {
        const width = 30;
        const filled = Math.round(ratio * width);
        process.stderr.write(
          `\r${label} [${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${Math.round(ratio * 100)}% ${done}/${total}`,
        );
      } else {
        const decile = Math.floor(ratio * 10);
        if (decile !== lastDecile) {
          lastDecile = decile;
          io.err(`${label}: ${Math.round(ratio * 100)}% (${done}/${total})`);
        }
      }
    },
    done() {
      if (io.isTty) process.stderr.write('\n');
    },
  };
}

/** The audit actor for commands run from a terminal. */
export function cliActor(): string {
  let user = 'unknown';
  try {
    user = userInfo().username;
  } catch {}
  return `cli:${user}`;
}

import { randomBytes } from 'node:crypto';
import {
  closeSync,
  fchmodSync,
  fsyncSync,
  linkSync,
  openSync,
  renameSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { dirname } from 'node:path';

/**
 * Files whose loss after a power cut would cost data: the key file (data sealed under a key the
 * disk lost) and audit exports (events deleted from the database once exported). Each is written
 * whole to a new temporary file beside its place, flushed, then moved into place, and the
 * directory is flushed so that the move itself survives. The directory must exist.
 */

/** `text` in a new file beside `path`, with exactly `mode`, flushed to the disk; returns its name. */
function writeTemp(path: string, text: string, mode: number): string {
  const temp = `${path}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`;
  const fd = openSync(temp, 'wx', mode);
  try {
    fchmodSync(fd, mode);
    writeFileSync(fd, text);
    fsyncSync(fd);
  } catch (error) {
    closeSync(fd);
    rmSync(temp, { force: true });
    throw error;
  }
  closeSync(fd);
  return temp;
}

/** Flushes a directory's entries (a rename or link in it) to the disk. */
function syncDirectory(dir: string): void {
  const fd = openSync(dir, 'r');
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

/** Puts `text` at `path` atomically and durably, replacing what is there. */
export function replaceFileDurably(path: string, text: string, mode = 0o600): void {
  const temp = writeTemp(path, text, mode);
  try {
    renameSync(temp, path);
  } catch (error) {
    rmSync(temp, { force: true });
    throw error;
  }
  syncDirectory(dirname(path));
}

/**
 * Puts `text` at `path` atomically and durably only if nothing is there (a link of the complete
 * file: two processes creating it at once never both win, nor overwrite each other). False if
 * something is.
 */
export function createFileDurably(path: string, text: string, mode = 0o600): boolean {
  const temp = writeTemp(path, text, mode);
  try {
    linkSync(temp, path);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw error;
  } finally {
    rmSync(temp, { force: true });
  }
  syncDirectory(dirname(path));
  return true;
}

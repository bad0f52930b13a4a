import { accessSync, constants } from 'node:fs';

/** Scheme check by parsing, so `HTTP://` is caught like `http://`. */
export const isPlainHttp = (url: string | undefined) => {
  if (url === undefined) return false;
  try {
    return new URL(url).protocol === 'http:';
  } catch {
    return false;
  }
};

/** Whether this process can read `path` (a mounted token file, say). */
export function readableFile(path: string): boolean {
  try {
    accessSync(path, constants.R_OK);
    return true;
  } catch {
    return false;
  }
}

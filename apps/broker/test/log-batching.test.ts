/**
 * Standard output in turns: the log lines of one turn of the event loop reach the block writer
 * together and in order, and none is lost when the process exits in the turn that wrote it.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { TurnBatched } from '../src/http/logger.ts';

function recorder() {
  const writes: string[] = [];
  let syncFlushes = 0;
  const inner = {
    write: (bytes: Buffer) => void writes.push(bytes.toString('utf8')),
    flushSync: () => void syncFlushes++,
    flush: (cb?: (error?: Error) => void) => cb?.(),
  };
  return { inner, writes, syncFlushes: () => syncFlushes };
}

const nextTurn = () => new Promise((resolve) => setImmediate(resolve));

describe('log lines handed over once per turn', () => {
  it('keeps the lines of a turn together and in order, and each turn apart', async () => {
    const { inner, writes } = recorder();
    const batched = new TurnBatched(inner);
    batched.write('one\n');
    batched.write('two\n');
    batched.write('three\n');
    assert.deepEqual(writes, [], 'nothing is written before the end of the turn');
    await nextTurn();
    assert.deepEqual(writes, ['one\ntwo\nthree\n']);
    batched.write('four\n');
    await nextTurn();
    assert.deepEqual(writes, ['one\ntwo\nthree\n', 'four\n']);
  });

  it('hands over what it holds before flushing, synchronously or not', async () => {
    const { inner, writes, syncFlushes } = recorder();
    const batched = new TurnBatched(inner);
    batched.write('held\n');
    batched.flushSync();
    assert.deepEqual(writes, ['held\n']);
    assert.equal(syncFlushes(), 1);
    batched.write('again\n');
    await new Promise<void>((resolve) => batched.flush(() => resolve()));
    assert.deepEqual(writes, ['held\n', 'again\n']);
    await nextTurn();
    assert.deepEqual(writes, ['held\n', 'again\n'], 'a handed-over line is not written twice');
  });

  it('writes the last lines of a process that exits in the turn that logged them', () => {
    const logger = join(import.meta.dirname, '..', 'src', 'http', 'logger.ts');
    const script = `
      import { createLogger } from ${JSON.stringify(logger)};
      const log = createLogger('info');
      log.info('first words');
      log.warn({ code: 7 }, 'last words: café ✓');
      process.exit(3);`;
    let out = '';
    try {
      execFileSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8' });
      assert.fail('the script exits with 3');
    } catch (error) {
      const failed = error as { status: number; stdout: string };
      assert.equal(failed.status, 3);
      out = failed.stdout;
    }
    const lines = out
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { msg: string; code?: number });
    assert.deepEqual(
      lines.map((l) => l.msg),
      ['first words', 'last words: café ✓'],
    );
    assert.equal(lines[1]!.code, 7);
  });
});

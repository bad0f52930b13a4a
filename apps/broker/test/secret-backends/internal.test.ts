/** The internal backend (envelope-encrypted rows in the broker's own database) against the conformance suite, on SQLite or, under `npm run test:pg`, PostgreSQL. */
import { DIALECT, startBroker, type TestBroker } from '../harness.ts';
import { secretBackendConformance } from './conformance.ts';

let broker: TestBroker | undefined;
secretBackendConformance({
  name: `internal (${DIALECT})`,
  async open() {
    broker = await startBroker();
    const { secrets } = broker.container;
    // The broker owns the backend's lifetime: closing the test's handle must not close it twice.
    return { ...secrets, close: async () => {} };
  },
  async teardown() {
    await broker?.close();
  },
});

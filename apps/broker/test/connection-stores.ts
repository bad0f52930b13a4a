/**
 * The test-only path to a broker's connection rows and sealed credentials. The container keeps
 * its connections store and credential store to itself (modules and the CLI go through
 * `ConnectionsService` and `ConnectionsMaintenance`); tests that inspect rows, leases or the
 * credentials as stored build the same stores over the container's database, keys and secret
 * backend. Both are stateless, so they see exactly what the container's own instances see.
 */
import type { Container } from '../src/container.ts';
import {
  type ConnectionsStore,
  createConnectionsStore,
} from '../src/modules/connections/connections.store.ts';
import { type CredentialStore, createCredentialStore } from '../src/modules/connections/credential-store.ts';

export interface ConnectionStores {
  readonly connectionsStore: ConnectionsStore;
  readonly credentialStore: CredentialStore;
}

/** `container`, with its connection stores attached for the test to read. */
export function withConnectionStores<C extends Container>(container: C): C & ConnectionStores {
  return Object.assign(container, {
    connectionsStore: createConnectionsStore(container.db, {
      refreshLeaseMs: container.config.refresh.leaseMs,
    }),
    credentialStore: createCredentialStore({
      mode: container.config.tokenStore,
      ring: container.keys.ring,
      secrets: container.secrets,
      fallback: container.secretsFallback,
    }),
  });
}

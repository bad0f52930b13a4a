import { defineErrors } from '../../errors/nexus-error.ts';

export const eventErrors = defineErrors({
  webhook_not_found: { status: 404, message: 'No live webhook with that id.' },
  invalid_webhook: { status: 400, message: 'The webhook is not valid.' },
  too_many_webhooks: {
    status: 409,
    message: 'The broker already has the maximum number of webhooks; delete one first.',
  },
  webhook_delivery_not_found: { status: 404, message: 'No webhook delivery with that id.' },
  webhook_delivery_pending: {
    status: 409,
    message: 'That delivery is still queued and will be attempted again; a redelivery is not needed.',
  },
  webhook_inactive: { status: 409, message: 'The webhook is disabled; enable it before redelivering.' },
});

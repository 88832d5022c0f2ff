import { ApprovalState, describeRequest, type ApprovalRecord } from './approval-record.js';
import { APPROVAL_METADATA_EVENT } from './slack-client.js';

/** Action ids of the message's interactive elements. */
export const SlackActionId = {
  Approve: 'portcullis_approve',
  Deny: 'portcullis_deny',
  Reason: 'portcullis_reason',
} as const;
export type SlackActionId = (typeof SlackActionId)[keyof typeof SlackActionId];

/** Block id of the reason input (its value arrives in the button click's state). */
export const REASON_BLOCK_ID = 'portcullis_reason_block';

/** Escapes Slack mrkdwn control characters in user-controlled text. */
export function mrkdwnEscape(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}

function code(text: string): string {
  return `\`${mrkdwnEscape(text).replace(/`/g, "'")}\``;
}

function slackDate(ms: number, fallback: string): string {
  return `<!date^${Math.floor(ms / 1000)}^{date_short_pretty} {time_secs}|${fallback}>`;
}

function summaryBlocks(r: ApprovalRecord): Record<string, unknown>[] {
  const q = r.request;
  const target = q.resource ? `${q.namespace ? `${q.namespace}/` : ''}${q.name || '(collection)'}` : q.path;
  const fields = [
    `*Who*\n${code(r.requester.subject)}${r.requester.clientId && r.requester.clientId !== r.requester.subject ? ` (client ${code(r.requester.clientId)})` : ''}`,
    `*What*\n${code(describeRequest(q))}`,
    `*Resource*\n${code(q.resource ? `${q.apiGroup ? `${q.apiGroup}/` : ''}${q.resource}${q.subresource ? `/${q.subresource}` : ''}` : q.method)} on ${code(q.connection)}`,
    `*Namespace/name*\n${code(target)}`,
    `*Rule*\n${code(r.ruleId)} (policy ${code(r.policyVersion)})`,
    `*Needs*\n${r.requirement.quorum} of ${mrkdwnEscape(r.requirement.approverGroups.join(', '))}${r.requirement.reasonRequired ? ', with a reason' : ''} · scope ${r.requirement.scope}`,
  ];
  const blocks: Record<string, unknown>[] = [
    { type: 'header', text: { type: 'plain_text', text: 'Approval requested', emoji: false } },
    { type: 'section', fields: fields.map((text) => ({ type: 'mrkdwn', text })) },
  ];
  if (q.bodyExcerpt !== '') {
    blocks.push({
      type: 'section',
      text: { type: 'mrkdwn', text: `*Body (excerpt, masked)*\n\`\`\`${mrkdwnEscape(q.bodyExcerpt).replace(/```/g, "'''")}\`\`\`` },
    });
  }
  return blocks;
}

/** The message posted when an approval is requested: the request, the rule, Approve and Deny. */
export function renderApprovalRequest(r: ApprovalRecord, channel: string): Record<string, unknown> {
  const blocks = summaryBlocks(r);
  blocks.push({
    type: 'context',
    elements: [{ type: 'mrkdwn', text: `Approval ${code(r.id)} · expires ${slackDate(r.expiresAtMs, new Date(r.expiresAtMs).toISOString())}` }],
  });
  blocks.push({
    type: 'input',
    block_id: REASON_BLOCK_ID,
    optional: !r.requirement.reasonRequired,
    dispatch_action: false,
    label: { type: 'plain_text', text: r.requirement.reasonRequired ? 'Reason or ticket link (required)' : 'Reason or ticket link' },
    element: { type: 'plain_text_input', action_id: SlackActionId.Reason, max_length: 500 },
  });
  blocks.push({
    type: 'actions',
    block_id: 'portcullis_decision',
    elements: [
      { type: 'button', action_id: SlackActionId.Approve, style: 'primary', text: { type: 'plain_text', text: 'Approve' }, value: r.id },
      { type: 'button', action_id: SlackActionId.Deny, style: 'danger', text: { type: 'plain_text', text: 'Deny' }, value: r.id },
    ],
  });
  return {
    channel,
    text: `Approval requested: ${r.requester.subject} wants to ${describeRequest(r.request)} (rule ${r.ruleId})`,
    blocks,
    metadata: { event_type: APPROVAL_METADATA_EVENT, event_payload: { approval_id: r.id } },
    unfurl_links: false,
    unfurl_media: false,
  };
}

/** The message after a decision (or a partial approval): the same summary, no buttons once final. */
export function renderApprovalUpdate(r: ApprovalRecord, ref: { channel: string; ts: string }): Record<string, unknown> {
  const blocks = summaryBlocks(r);
  const votes = r.approvals.map((a) => `${code(a.subject)}${a.reason ? `: ${mrkdwnEscape(a.reason)}` : ''}`);
  let status: string;
  switch (r.state) {
    case ApprovalState.Pending:
      status = `:hourglass: ${r.approvals.length} of ${r.requirement.quorum} approvals: ${votes.join('; ')}`;
      break;
    case ApprovalState.Granted:
    case ApprovalState.Consumed:
      status = `:white_check_mark: *Approved* by ${votes.join('; ')}`;
      break;
    case ApprovalState.Denied:
      status = `:no_entry: *Denied* by ${code(r.denial?.subject ?? '')}${r.denial?.reason ? `: ${mrkdwnEscape(r.denial.reason)}` : ''}`;
      break;
    case ApprovalState.Expired:
      status = ':alarm_clock: *Expired*: nobody decided in time';
      break;
  }
  blocks.push({ type: 'section', text: { type: 'mrkdwn', text: status } });
  blocks.push({ type: 'context', elements: [{ type: 'mrkdwn', text: `Approval ${code(r.id)}` }] });
  if (r.state === ApprovalState.Pending) {
    const request = renderApprovalRequest(r, ref.channel)['blocks'] as Record<string, unknown>[];
    blocks.push(...request.slice(-2));
  }
  return {
    channel: ref.channel,
    ts: ref.ts,
    text: `Approval ${r.id}: ${r.state}`,
    blocks,
    metadata: { event_type: APPROVAL_METADATA_EVENT, event_payload: { approval_id: r.id } },
  };
}

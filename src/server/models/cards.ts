/** A registry entry as OpenAI's model object, with the state extensions. */
import type { ModelCard } from '../protocol/models.ts';
import type { ModelEntry } from './registry.ts';

/** When the process started: the `created` of models not loaded yet. */
const STARTED_AT = Math.floor(Date.now() / 1000);

export function modelCard(entry: ModelEntry, id = entry.name): ModelCard {
  const ctx = entry.ctx;
  const contextLength = ctx?.contextLength ?? entry.source.contextLength;
  return {
    id,
    object: 'model',
    created: ctx?.loadedAt ?? STARTED_AT,
    owned_by: 'local',
    ...(contextLength !== undefined ? { max_model_len: contextLength } : {}),
    state: entry.state,
    ...(entry.state === 'failed' && entry.error ? { error: entry.error } : {}),
    ...(id !== entry.name ? { alias_of: entry.name } : {}),
  };
}

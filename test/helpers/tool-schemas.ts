/**
 * Tool parameter schemas a random-weight model can complete under a grammar: enums, booleans and
 * bounded integers only (a free string may never be closed by random weights).
 */
export const WEATHER = {
  type: 'object',
  properties: { city: { enum: ['Paris', 'Oslo', 'Lima'] }, unit: { enum: ['c', 'f'] }, days: { type: 'integer', minimum: 1, maximum: 7 } },
  required: ['city', 'unit', 'days'],
  additionalProperties: false,
};

export const TIME = { type: 'object', properties: { zone: { enum: ['UTC', 'CET'] }, exact: { type: 'boolean' } }, required: ['zone', 'exact'] };

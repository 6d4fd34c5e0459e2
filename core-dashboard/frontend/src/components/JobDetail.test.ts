import { expect, it } from 'vitest'
import { prettyPayload } from './JobDetail'

it('pretty-prints JSON payloads and keeps others as they are', () => {
  expect(prettyPayload('{"to":"a","n":[1]}')).toBe('{\n  "to": "a",\n  "n": [\n    1\n  ]\n}')
  expect(prettyPayload('not json')).toBe('not json')
})

import { describe, expect, it } from 'vitest'
import { dedent, excerpt, region, regionNames } from './region'

const source = `use std::time::Duration;

// region: setup
pub fn setup() {}
// endregion: setup

pub async fn run() {
    // region: body
    let a = 1;

        let indented = a;
    // endregion: body
    ignored();
}

// region: outer
fn outer() {
    // region: inner
    inner();
    // endregion: inner
}
// endregion: outer
`

describe('region', () => {
  it('returns the lines between the markers', () => {
    expect(region(source, 'setup')).toBe('pub fn setup() {}')
  })

  it('dedents by the common indentation and keeps blank lines inside', () => {
    expect(region(source, 'body')).toBe('let a = 1;\n\n    let indented = a;')
  })

  it('strips the markers of regions nested inside', () => {
    expect(region(source, 'outer')).toBe('fn outer() {\n    inner();\n}')
    expect(region(source, 'inner')).toBe('inner();')
  })

  it('handles CRLF line endings', () => {
    expect(region('// region: a\r\n  x();\r\n// endregion: a\r\n', 'a')).toBe('x();')
  })

  it('throws for a missing, unterminated or repeated region', () => {
    expect(() => region(source, 'nope')).toThrow('no region "nope"')
    expect(() => region('// region: a\nx', 'a')).toThrow('has no "endregion: a" marker')
    expect(() => region('// region: a\n// endregion: a\n// region: a\n// endregion: a', 'a')).toThrow('twice')
  })

  it('does not match a region whose name only starts the same', () => {
    expect(() => region('// region: setup-more\nx\n// endregion: setup-more', 'setup')).toThrow()
  })

  it('reads the markers of shell, TOML and SQL files', () => {
    const script = '#!/usr/bin/env bash\n# region: create\ncurl -s "$BASE/v1/clients"\n# endregion: create\necho done\n'
    expect(region(script, 'create')).toBe('curl -s "$BASE/v1/clients"')
    const sql = '-- region: table\nCREATE TABLE t (id BIGINT);\n-- endregion: table\n'
    expect(region(sql, 'table')).toBe('CREATE TABLE t (id BIGINT);')
    expect(regionNames('[a]\n# region: deps\nx = 1\n# endregion: deps\n#[derive(Debug)]\n')).toEqual(['deps'])
  })

  it('lists region names', () => {
    expect(regionNames(source)).toEqual(['setup', 'body', 'outer', 'inner'])
  })

  it('dedent ignores blank lines and trims trailing spaces', () => {
    expect(dedent(['    a  ', '', '      b'])).toEqual(['a', '', '  b'])
  })
})

describe('excerpt', () => {
  const sql = 'CREATE TABLE a (\n  id BIGINT\n);\nCREATE INDEX a_id ON a (id);\n'

  it('returns the lines from the first match through the next', () => {
    expect(excerpt(sql, 'CREATE TABLE a', ');')).toBe('CREATE TABLE a (\n  id BIGINT\n);')
    expect(excerpt(sql, 'CREATE INDEX', 'CREATE INDEX')).toBe('CREATE INDEX a_id ON a (id);')
  })

  it('throws when the text it looks for is gone', () => {
    expect(() => excerpt(sql, 'CREATE TABLE b', ');')).toThrow('no line starting with "CREATE TABLE b"')
    expect(() => excerpt(sql, 'CREATE INDEX', ');')).toThrow('after "CREATE INDEX"')
  })
})

for i, key in ipairs(KEYS) do
  if ARGV[1] == '0' then
    redis.call('SET', key, ARGV[3 + i])
  else
    redis.call('SET', key, ARGV[3 + i], 'PX', ARGV[1])
  end
end
redis.call('PUBLISH', ARGV[2], ARGV[3])
return 1

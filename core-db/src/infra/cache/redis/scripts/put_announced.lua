local args = {KEYS[1], ARGV[1]}
if ARGV[2] ~= '0' then
  args[#args + 1] = 'PX'
  args[#args + 1] = ARGV[2]
end
if ARGV[3] == '1' then args[#args + 1] = 'NX' end
if redis.call('SET', unpack(args)) then
  redis.call('PUBLISH', ARGV[4], ARGV[5])
  return 1
end
return 0

-- not_owner now also covers extending objects (an index, statistics, a child
-- table, a domain CHECK), COMMENT, and giving one's own objects away.
UPDATE @extschema@.rules
   SET reason = 'baseline: agents may change, extend or give away only objects they own themselves'
 WHERE baseline AND condition = 'not_owner'
   AND reason = 'baseline: agents may alter only relations they own themselves';

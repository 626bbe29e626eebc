-- regex-dialect: every line marked `fires` must fire, and no other line.
select
    regexp_like(label, '(a)\1') as backreference,  -- fires: regex-dialect
    regexp_like(label, 'a(?=b)') as lookahead,  -- fires: regex-dialect
    regexp_extract(label, '[[:alpha:]]+') as posix_class,  -- fires: regex-dialect
    regexp_like(label, '(?U)a+') as flag_u,  -- fires: regex-dialect
    regexp_replace(label, '(a)', '$1$1') as group_reference,  -- fires: regex-dialect
    regexp_replace(label, '-', '') as every_match,  -- fires: regex-dialect
    regexp_like(label, code) as dynamic_pattern,  -- fires: regex-dialect
    regexp_like(label, '^[A-Z][a-z]+$') as shared_syntax,
    regexp_extract(label, '(?i)peak (\w+)', 1) as case_insensitive
from awsdatacatalog.fixtures.members

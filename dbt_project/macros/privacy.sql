{#
  Personal data is email and location only. Everything shown to people outside the CRM (the
  leaderboard, the dashboard) uses these masks; the rule is written here once.
#}

{# j***@example.com: the first character of the local part, then the domain. #}
{% macro mask_email(email) -%}
  substr({{ email }}, 1, 1) || '***' || substr({{ email }}, strpos({{ email }}, '@'))
{%- endmacro %}

{# A public display handle: the email's first letter and the end of the member id (J***4976). #}
{% macro member_handle(email, user_id) -%}
  upper(substr({{ email }}, 1, 1)) || '***' || substr({{ user_id }}, greatest(length({{ user_id }}) - 3, 1))
{%- endmacro %}

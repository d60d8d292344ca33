-- Distributing Quanyu's tables over a Citus cluster, by tenant (deploy/README.md, "Past one
-- PostgreSQL"). Run once, on the coordinator, after `quanyu migrate` and before the services
-- start; tests/schema.rs checks that this file names every table the migrations make, and that
-- every distributed table's primary key and unique indexes include tenant_id.

-- The tenants themselves (keyed by their id, not by tenant_id): few rows, copied to every node.
SELECT create_reference_table('member_identity.tenants');

-- The event streams (each service's outbox and its consumers' cursors) and the migration
-- records: one global order per service, so they stay on the coordinator, as Citus local tables
-- that a transaction may write beside a tenant's rows on a worker.
SELECT citus_add_local_table_to_metadata('member_identity.member_identity_migrations');
SELECT citus_add_local_table_to_metadata('member_identity.outbox_consumers');
SELECT citus_add_local_table_to_metadata('member_identity.outbox_events');
SELECT citus_add_local_table_to_metadata('member_identity.outbox_pending');
SELECT citus_add_local_table_to_metadata('member_identity.outbox_sequence');
SELECT citus_add_local_table_to_metadata('loyalty_points.loyalty_points_migrations');
SELECT citus_add_local_table_to_metadata('loyalty_points.outbox_consumers');
SELECT citus_add_local_table_to_metadata('loyalty_points.outbox_cursors');
SELECT citus_add_local_table_to_metadata('loyalty_points.outbox_events');
SELECT citus_add_local_table_to_metadata('loyalty_points.outbox_pending');
SELECT citus_add_local_table_to_metadata('loyalty_points.outbox_sequence');
SELECT citus_add_local_table_to_metadata('campaign.campaign_migrations');
SELECT citus_add_local_table_to_metadata('campaign.outbox_consumers');
SELECT citus_add_local_table_to_metadata('campaign.outbox_cursors');
SELECT citus_add_local_table_to_metadata('campaign.outbox_events');
SELECT citus_add_local_table_to_metadata('campaign.outbox_pending');
SELECT citus_add_local_table_to_metadata('campaign.outbox_sequence');
SELECT citus_add_local_table_to_metadata('analytics.analytics_migrations');
SELECT citus_add_local_table_to_metadata('analytics.outbox_cursors');
-- Analytics' log of changed consumers: one order for every tenant, read by every replica.
SELECT citus_add_local_table_to_metadata('analytics.consumer_changes');

-- Everything else belongs to one tenant: distributed by tenant_id, co-located, so that a
-- use case's statements all go to the worker that holds its tenant.
SELECT create_distributed_table('member_identity.audit_entries', 'tenant_id');
SELECT create_distributed_table('member_identity.brands', 'tenant_id');
SELECT create_distributed_table('member_identity.consents', 'tenant_id');
SELECT create_distributed_table('member_identity.guide_bindings', 'tenant_id');
SELECT create_distributed_table('member_identity.identities', 'tenant_id');
SELECT create_distributed_table('member_identity.member_tags', 'tenant_id');
SELECT create_distributed_table('member_identity.members', 'tenant_id');
SELECT create_distributed_table('member_identity.tag_definitions', 'tenant_id');
SELECT create_distributed_table('loyalty_points.accounts', 'tenant_id');
SELECT create_distributed_table('loyalty_points.entries', 'tenant_id');
SELECT create_distributed_table('loyalty_points.idempotency', 'tenant_id');
SELECT create_distributed_table('loyalty_points.member_aliases', 'tenant_id');
SELECT create_distributed_table('loyalty_points.programs', 'tenant_id');
SELECT create_distributed_table('loyalty_points.sales', 'tenant_id');
SELECT create_distributed_table('campaign.assist_tasks', 'tenant_id');
SELECT create_distributed_table('campaign.assists', 'tenant_id');
SELECT create_distributed_table('campaign.campaigns', 'tenant_id');
SELECT create_distributed_table('campaign.code_pool', 'tenant_id');
SELECT create_distributed_table('campaign.coupon_holdings', 'tenant_id');
SELECT create_distributed_table('campaign.coupon_templates', 'tenant_id');
SELECT create_distributed_table('campaign.coupons', 'tenant_id');
SELECT create_distributed_table('campaign.drops', 'tenant_id');
SELECT create_distributed_table('campaign.idempotency', 'tenant_id');
SELECT create_distributed_table('campaign.invite_codes', 'tenant_id');
SELECT create_distributed_table('campaign.member_birthdays', 'tenant_id');
SELECT create_distributed_table('campaign.member_enrolments', 'tenant_id');
SELECT create_distributed_table('campaign.member_identity_keys', 'tenant_id');
SELECT create_distributed_table('campaign.member_purchases', 'tenant_id');
SELECT create_distributed_table('campaign.merged_members', 'tenant_id');
SELECT create_distributed_table('campaign.point_grants', 'tenant_id');
SELECT create_distributed_table('campaign.redemptions', 'tenant_id');
SELECT create_distributed_table('campaign.referral_tasks', 'tenant_id');
SELECT create_distributed_table('campaign.referrals', 'tenant_id');
SELECT create_distributed_table('campaign.referred_keys', 'tenant_id');
SELECT create_distributed_table('campaign.rewards', 'tenant_id');
SELECT create_distributed_table('analytics.audiences', 'tenant_id');
SELECT create_distributed_table('analytics.campaign_coupons', 'tenant_id');
SELECT create_distributed_table('analytics.campaign_reach', 'tenant_id');
SELECT create_distributed_table('analytics.campaign_results', 'tenant_id');
SELECT create_distributed_table('analytics.daily_lines', 'tenant_id');
SELECT create_distributed_table('analytics.daily_sales', 'tenant_id');
SELECT create_distributed_table('analytics.idempotency', 'tenant_id');
SELECT create_distributed_table('analytics.identity_links', 'tenant_id');
SELECT create_distributed_table('analytics.interaction_days', 'tenant_id');
SELECT create_distributed_table('analytics.member_days', 'tenant_id');
SELECT create_distributed_table('analytics.member_programs', 'tenant_id');
SELECT create_distributed_table('analytics.member_tags', 'tenant_id');
SELECT create_distributed_table('analytics.members', 'tenant_id');
SELECT create_distributed_table('analytics.sale_lines', 'tenant_id');

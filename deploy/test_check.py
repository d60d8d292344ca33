"""The policy of check.py finds each thing it is there to find: the rendered base keeps it, and
each way of breaking it is named.

    python3 -m unittest discover -s deploy
"""

import copy
import unittest

import check


class Policy(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.version, cls.drain = check.workspace_version(), check.drain_seconds()
        cls.base = check.render("base")

    def broken(self, change):
        objects = copy.deepcopy(self.base)
        change(objects)
        return check.violations(objects, self.version, self.drain)

    def deployment(self, objects, service="campaign"):
        return next(item for item in objects if item["kind"] == "Deployment" and item["metadata"]["name"] == service)

    def container(self, objects, service="campaign"):
        return self.deployment(objects, service)["spec"]["template"]["spec"]["containers"][0]

    def test_the_base_keeps_the_policy_and_its_schemas(self):
        self.assertEqual(check.violations(self.base, self.version, self.drain), [])
        self.assertEqual(check.schema_errors(self.base), [])

    def test_a_missing_probe_is_named(self):
        found = self.broken(lambda objects: self.container(objects).pop("startupProbe"))
        self.assertEqual(found, ["Deployment/campaign: container campaign: no startupProbe"])

    def test_an_unversioned_or_other_version_image_is_named(self):
        def latest(objects):
            self.container(objects)["image"] = "quanyu:latest"
            self.container(objects, "analytics")["image"] = "registry.example/quanyu:0.0.9"

        self.assertCountEqual(
            self.broken(latest),
            [
                "Deployment/campaign: container campaign: image 'quanyu:latest' is not tagged with a version",
                "Deployment/analytics: container analytics: image 'registry.example/quanyu:0.0.9' "
                f"is not the workspace version {self.version}",
            ],
        )

    def test_a_loosened_security_context_is_named(self):
        def loosen(objects):
            self.deployment(objects)["spec"]["template"]["spec"].pop("securityContext")
            self.container(objects)["securityContext"]["readOnlyRootFilesystem"] = False
            self.container(objects)["resources"].pop("limits")

        self.assertEqual(
            self.broken(loosen),
            [
                "Deployment/campaign: pod: runAsNonRoot is not true",
                "Deployment/campaign: pod: seccompProfile is not RuntimeDefault",
                "Deployment/campaign: container campaign: readOnlyRootFilesystem is not true",
                "Deployment/campaign: container campaign: no memory limit",
            ],
        )

    def test_a_service_without_its_companions_or_drain_is_named(self):
        def strip(objects):
            objects[:] = [
                item
                for item in objects
                if not (item["kind"] in {"NetworkPolicy", "HorizontalPodAutoscaler"} and item["metadata"]["name"] == "campaign")
            ]
            self.deployment(objects)["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] = 10

        self.assertEqual(
            self.broken(strip),
            [
                f"Deployment/campaign: terminationGracePeriodSeconds is not above the {self.drain:g} s drain",
                "Deployment/campaign: no NetworkPolicy selects its pods",
                "Deployment/campaign: no HorizontalPodAutoscaler scales it",
            ],
        )

    def test_a_schema_error_is_named(self):
        objects = copy.deepcopy(self.base)
        self.container(objects)["readinessProbe"]["periodSecond"] = 2
        errors = check.schema_errors([self.deployment(objects)])
        self.assertTrue(errors and all("periodSecond" in error for error in errors), errors)


class Queries(unittest.TestCase):
    def test_the_alerts_and_dashboards_parse_and_read_what_metrics_txt_lists(self):
        self.assertEqual(check.observability_problems(), [])

    def test_compose_mounts_files_that_exist_and_scrapes_its_own_services(self):
        self.assertEqual(check.compose_problems(), [])

    def test_the_metrics_a_query_reads_are_found_and_a_broken_query_is_named(self):
        names, problems = check.metric_names(
            {
                "ratio": 'sum(rate(a_total{code="X"}[$__rate_interval])) / sum by (le) (b_bucket) > on() c',
                "broken": "sum(rate(a_total[5m]",
            }
        )
        self.assertEqual(names, {"a_total", "b_bucket", "c"})
        self.assertEqual(len(problems), 1)
        self.assertTrue(problems[0].startswith("broken: "), problems)


if __name__ == "__main__":
    unittest.main()

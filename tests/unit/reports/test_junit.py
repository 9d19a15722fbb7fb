"""The JUnit report: exact XML for the sample, and what CI parsers read from it."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest

from labctl.core.result import read_matrix
from labctl.reports import junit

from .helpers import assert_golden, cell, sample

pytestmark = pytest.mark.unit

CLASSNAME = "labctl.matrix.veth-checksum"


def suite_of(text: str) -> ET.Element:
    root = ET.fromstring(text.encode("utf-8"))
    assert root.tag == "testsuites"
    suites = root.findall("testsuite")
    assert len(suites) == 1
    return suites[0]


def counted(suite: ET.Element) -> dict[str, int]:
    cases = suite.findall("testcase")
    return {
        "tests": len(cases),
        "failures": sum(1 for c in cases if c.find("failure") is not None),
        "errors": sum(1 for c in cases if c.find("error") is not None),
        "skipped": sum(1 for c in cases if c.find("skipped") is not None),
    }


def attributes(element: ET.Element) -> dict[str, int]:
    return {key: int(element.get(key, "-1")) for key in ("tests", "failures", "errors", "skipped")}


def test_sample_report_is_exactly_the_golden_xml() -> None:
    assert_golden("matrix.junit.xml", junit.render(read_matrix(sample())))


def test_parses_back_with_counts_that_match_the_testcases() -> None:
    text = junit.render(read_matrix(sample()))
    assert text.startswith('<?xml version="1.0" encoding="UTF-8"?>\n')
    root = ET.fromstring(text.encode("utf-8"))
    suite = suite_of(text)
    assert suite.get("name") == "veth-checksum"
    assert (
        attributes(suite)
        == counted(suite)
        == {
            "tests": 8,
            "failures": 1,
            "errors": 0,
            "skipped": 2,
        }
    )
    assert attributes(root) == attributes(suite)
    assert suite.get("time") == "61.200"
    assert suite.get("timestamp") == "2026-11-25T07:45:00"


def test_one_testcase_per_cell_named_after_switch_and_offload() -> None:
    suite = suite_of(junit.render(read_matrix(sample())))
    cases = suite.findall("testcase")
    assert [c.get("name") for c in cases][:3] == [
        "linux-bridge offload=on",
        "linux-bridge offload=off",
        "ovs-kernel offload=on",
    ]
    assert {c.get("classname") for c in cases} == {CLASSNAME}
    failed = next(c for c in cases if c.get("name") == "ovs-dpdk offload=off")
    failure = failed.find("failure")
    assert failure is not None
    assert failure.get("message") == (
        "expected HTTP to pass, it did fail (3/5); expected no fault, found "
        "lost-between-taps, syn-unanswered"
    )
    assert (failure.text or "").startswith("FAULT: TCP SYN 10.0.0.1:60562 -> 10.0.0.2:80 seen")
    assert failed.get("time") == "9.800"
    skipped = next(c for c in cases if c.get("name") == "ovs-kernel offload=off")
    marker = skipped.find("skipped")
    assert marker is not None
    assert (marker.get("message") or "").startswith("the openvswitch kernel module is missing")


def test_error_cell_becomes_an_error_element() -> None:
    result = sample()
    cell(result, "ovs-dpdk", "on").update(
        status="error",
        reason="ovs-vswitchd did not start\nEAL: cannot get hugepages",
        observed=None,
    )
    suite = suite_of(junit.render(read_matrix(result)))
    assert (
        attributes(suite)
        == counted(suite)
        == {
            "tests": 8,
            "failures": 1,
            "errors": 1,
            "skipped": 2,
        }
    )
    case = next(c for c in suite.findall("testcase") if c.get("name") == "ovs-dpdk offload=on")
    error = case.find("error")
    assert error is not None
    assert error.get("message") == "ovs-vswitchd did not start EAL: cannot get hugepages"
    assert error.text == "ovs-vswitchd did not start\nEAL: cannot get hugepages"


def test_markup_and_control_characters_survive_as_text() -> None:
    result = sample()
    result["lab"] = 'lab "<x>" & co'
    cell(result, "ovs-dpdk", "off")["reason"] = "<script>alert(1)</script>\x00\x1b[31m & more"
    text = junit.render(read_matrix(result))
    assert "<script>" not in text
    suite = suite_of(text)
    assert suite.get("name") == 'lab "<x>" & co'
    failure = suite.find("testcase/failure")
    assert failure is not None
    assert failure.get("message") == "<script>alert(1)</script>[31m & more"

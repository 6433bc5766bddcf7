"""The console's readings import in a real browser: a batch, several files at once (picked
and dropped), a progress bar and a status for each, and the batch's error log by row and
column, paged."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from playwright.async_api import expect

from tests.browser.conftest import Console
from tests.browser.steps import new_account, new_device, sign_in

# More bad rows than an error log page holds (20), so that the log has a second page.
BAD_ROWS = 23


def csv_of(rows: list[tuple[str, str]]) -> bytes:
    return ("timestamp,value\n" + "".join(f"{when},{value}\n" for when, value in rows)).encode()


def good_and_bad() -> tuple[bytes, bytes]:
    """A file of 2,000 good readings, and one whose rows alternate good and bad."""
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(days=2)

    def at(second: int) -> str:
        return (start + timedelta(seconds=second)).isoformat().replace("+00:00", "Z")

    good = csv_of([(at(i), f"{20 + (i % 50) / 10:.1f}") for i in range(2_000)])
    bad_rows: list[tuple[str, str]] = []
    for i in range(BAD_ROWS):
        bad_rows.append((at(3_000 + i), "21.5"))
        # Odd rows lack a number, even rows a time.
        bad_rows.append((at(3_500 + i), "n/a") if i % 2 else ("yesterday", "22.0"))
    return good, csv_of(bad_rows)


async def test_import_a_csv_with_bad_rows_and_read_its_error_log(console: Console) -> None:
    page = console.page
    email = await new_account(console)
    _, device_id = await new_device(console, email, "Greenhouse", "temperature")
    await sign_in(console, email)
    # The device's page links to the import with the device chosen.
    await console.open(f"/devices/{device_id}")
    await page.get_by_role("link", name="Import readings from files…").click()
    await page.wait_for_url("**/#/imports?device_id=*")
    await page.get_by_text("No batch yet.").wait_for()
    await expect(page.get_by_label("Device of the batch's rows")).to_have_value(device_id)
    await page.get_by_role("button", name="Start a batch").click()
    await page.wait_for_url("**/#/imports/*")
    await expect(page.locator("#batch-status")).to_have_text("ACTIVE")
    # The batch's device is the upload's default.
    await expect(page.locator("#upload-form").get_by_label("Device")).to_have_value(device_id)

    good, bad = good_and_bad()
    await page.locator("#drop-zone input[type=file]").set_input_files(
        [
            {"name": "good.csv", "mimeType": "text/csv", "buffer": good},
            {"name": "bad.csv", "mimeType": "text/csv", "buffer": bad},
        ]
    )
    # Each file has its own progress bar, and both reach the file's size.
    for name, content in (("good.csv", good), ("bad.csv", bad)):
        bar = page.get_by_label(f"Upload of {name}")
        await expect(bar).to_have_js_property("max", len(content))
        await expect(bar).to_have_js_property("value", len(content))
    await expect(page.locator('[data-file="good.csv"]')).to_have_text("COMPLETED")
    await expect(page.locator('[data-file="bad.csv"]')).to_have_text("COMPLETED")
    await expect(page.locator("#import-progress")).to_have_text("Every file has been processed.")
    files = page.locator("#file-table tbody tr")
    await expect(files.filter(has_text="good.csv")).to_contain_text("2000 imported, 0 rejected")
    await expect(files.filter(has_text="bad.csv")).to_contain_text(
        f"{BAD_ROWS} imported, {BAD_ROWS} rejected"
    )

    # The error log: each bad row by its row (the header is row 1) and column, paged.
    log = page.locator("#error-log tbody tr")
    await expect(log).to_have_count(20)
    first = log.first
    await expect(first.locator("td").nth(0)).to_have_text("bad.csv")
    await expect(first.locator("td").nth(1)).to_have_text("3")
    await expect(first.locator("td").nth(2)).to_have_text("timestamp")
    second = log.nth(1)
    await expect(second.locator("td").nth(1)).to_have_text("5")
    await expect(second.locator("td").nth(2)).to_have_text("value")
    await expect(page.get_by_text(f"Page 1 of 2 · {BAD_ROWS} in all")).to_be_visible()
    await console.screenshot("import-batch")
    await page.get_by_role("button", name="Next").click()
    await page.wait_for_url("**/#/imports/*?page=2")
    await expect(log).to_have_count(BAD_ROWS - 20)
    await expect(log.last.locator("td").nth(1)).to_have_text(str(2 * BAD_ROWS + 1))

    # A dropped file goes the same way; one of a format the import does not read is
    # refused, with the reason beside it.
    drop = await page.evaluate_handle(
        """() => {
            const data = new DataTransfer();
            data.items.add(new File(["timestamp,value\\n"], "notes.txt", { type: "text/plain" }));
            return data;
        }"""
    )
    await page.locator("#drop-zone").dispatch_event("drop", {"dataTransfer": drop})
    refused = files.filter(has_text="notes.txt")
    await expect(refused.locator('[data-file="notes.txt"]')).to_have_text("REFUSED")
    await expect(refused).to_contain_text("format must be one of: csv, json, xlsx")
    console.forgive(400)

    await page.set_viewport_size({"width": 390, "height": 844})
    await console.screenshot("import-batch-phone")
    await page.set_viewport_size({"width": 1280, "height": 900})

    # Completing the batch is asked first; its list shows it with its errors.
    await page.get_by_role("button", name="Complete the batch").click()
    await page.get_by_role("button", name="Complete", exact=True).click()
    await expect(page.locator("#batch-status")).to_have_text("COMPLETED")
    await expect(page.locator("#drop-zone")).to_have_count(0)
    await page.get_by_role("navigation", name="Main").get_by_role("link", name="Imports").click()
    await page.wait_for_url("**/#/imports")
    row = page.locator("#batch-table tbody tr")
    await expect(row).to_have_count(1)
    await expect(row.locator("td").nth(1)).to_have_text("COMPLETED")
    await expect(row.locator("td").nth(3)).to_have_text(str(BAD_ROWS))

"""Teacher and grader tooling: student versions from master notebooks, and an autograder.

* :mod:`.markers`: nbgrader-style markers (``### BEGIN SOLUTION`` ...) found, checked, stripped;
* :mod:`.release`: ``python -m course_utils release SRC_DIR OUT_DIR``, student notebooks and a key;
* :mod:`.key`: the grader key (exercise list, points, hidden tests);
* :mod:`.kernel`, :mod:`.iopub`, :mod:`.execute`: running notebook cells in a kernel with hard time
  limits, its output capped;
* :mod:`.grade`: ``python -m course_utils grade SUBMISSIONS_DIR --key ... --out grades.csv``, the batch;
  :mod:`.jobs` finds the submissions, :mod:`.notebook` grades one;
* :mod:`.sandbox`, :mod:`.guard`: each kernel confined; its interpreter checked before the tests;
* :mod:`.recorder`, :mod:`.codec`, :mod:`.effects`, :mod:`.replay`, :mod:`.outside`: each test decided
  again outside the student's kernel, on the results the kernel recorded;
* :mod:`.feedback`, :mod:`.sheet`: error messages in a student's words, feedback files, the summary,
  the grade sheet and its resumable partial results.

See docs/grading.md for the teacher and grader workflow.
"""
